"""Helpers the pipelines run (.gitlab-ci.yml, .github/workflows): which stacks a change touches, and
one merge-request note per topic, updated in place."""
