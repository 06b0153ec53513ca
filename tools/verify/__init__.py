"""`make verify STACK=<stack>`: a live acceptance check of a deployed stack (issue 21).

It reads the cluster through `kubectl -o json` with the stack's kubeconfig output (no client library: the
same JSON a user would look at) and checks what users rely on: nodes Ready, Helm releases deployed, the data
plane's operator resources Ready, every public hostname resolving and serving a valid certificate, no
critical alert firing and every backup recent after its first schedule. The checks are pure functions of
the API's JSON (checks.py), unit-tested against recorded responses (tests/fixtures/verify).
"""
