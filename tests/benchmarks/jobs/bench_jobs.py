"""The trivial job the run-overhead benchmark measures."""


def trivial(ctx):
    return {"ok": True}
