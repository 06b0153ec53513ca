"""`make verify STACK=<stack>`: a live acceptance check of a deployed stack (issue 21).

It reads the cluster through `kubectl -o json` with the stack's kubeconfig output (no client library: the
same JSON a user would look at) and checks what users rely on: nodes Ready, Helm releases deployed, the data
plane's operator resources Ready, every public hostname resolving and serving a valid certificate, no
critical alert firing, every backup recent after its first schedule, each store accepting a write and a read
with a consumer's own login (stores.py: the only objects verify creates, short-lived pods), the node autoscaler
running with every node group of the stack's config registered, and every restore drill recent. What to expect
(node groups, drills, consumers) comes from the stack file's config (expected.py). The checks are pure functions
of the API's JSON (checks.py), unit-tested against recorded responses (tests/fixtures/verify).
"""
