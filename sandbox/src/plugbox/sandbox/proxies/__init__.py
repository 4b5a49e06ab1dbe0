"""The checked runtime proxies behind ``ctx.runtime``: fs, net, env, shell."""

from plugbox.sandbox.proxies.env import CheckedEnv
from plugbox.sandbox.proxies.fs import CheckedFs
from plugbox.sandbox.proxies.net import CheckedNet
from plugbox.sandbox.proxies.shell import CheckedShell

__all__ = ["CheckedEnv", "CheckedFs", "CheckedNet", "CheckedShell"]
