"""The adplatform CrossGuard policy pack (`pulumi preview --policy-pack policy`); rules in `rules.py`."""
