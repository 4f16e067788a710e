"""The dev stack's port choice: a port the caller named is never handed to another server of the stack."""
import itertools
import random

from extproc import devstack
from extproc.devstack import Stack


def test_a_given_listen_port_is_never_handed_to_another_server(monkeypatch, tmp_path):
    given = 24680
    others = itertools.count(24001)

    def draws():   # every other draw is the given port; the rest count up (a port in use is skipped)
        while True:
            yield given
            yield next(others)
    draw = draws()
    monkeypatch.setattr(random, "randrange", lambda lo, hi: next(draw))
    monkeypatch.setattr(devstack, "_HANDED_OUT", set())
    stack = Stack(listen_port=given, workdir=tmp_path)
    stack._choose_ports(["openai", "anthropic"])
    others = [stack.admin_port, stack.extproc_port, stack.status_port, *stack.simulators.values()]
    assert stack.listen_port == given
    assert given not in others and len(set(others)) == len(others) == 5
