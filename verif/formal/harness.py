"""The base of the formal harnesses: one unit from ``hdl/`` at small elaboration parameters,
its environment, and its properties."""

from dataclasses import dataclass
from typing import Callable, Optional

from amaranth.hdl import Elaboratable, Fragment, Module

from .properties import Checks, Internals, drops_valid, mutant

__all__ = ["Harness", "Mutation", "UnknownMutation", "valid_drops"]


class UnknownMutation(LookupError):
    pass


@dataclass(frozen=True)
class Mutation:
    """A deliberately broken variant of a unit, and the properties it breaks: each of
    ``catches`` (a name or a tuple of names), checked alone (the other properties removed, so
    none that fails first can mask it), fails.

    ``after(dut, m, internals)`` adds overriding statements to the unit (to its submodule at
    the path ``under``); ``during(dut)`` is a context manager around its elaboration (see
    :func:`~.properties.mutant`).
    """

    catches: object
    text: str
    after: Optional[Callable] = None
    during: Optional[Callable] = None
    under: tuple = ()

    @property
    def caught_by(self):
        """``catches`` as a tuple."""
        return (self.catches,) if isinstance(self.catches, str) else tuple(self.catches)


def valid_drops(port="o", *, comb=False):
    """The mutation every output has: ``port``'s valid falls while the beat waits for ready
    (``comb``: the unit drives that valid combinationally)."""
    return Mutation(catches=f"{port}_contract", text=f"{port}.valid falls while stalled",
                    after=drops_valid(port, comb=comb))


class Harness(Elaboratable):
    """A formal harness: the unit, an environment driving its inputs with arbitrary values that
    follow the stream rules, and named properties (:class:`~.properties.Checks`).

    Subclasses set the class attributes and implement :meth:`check`.

    Attributes
    ----------
    unit : str
        Name of the harness (``spikeforge formal UNIT``).
    component : type
        The unit's class; built with ``params``.
    params : dict
        Small elaboration parameters, so the proofs stay cheap.
    prove_depth : int
        k of the k-induction (and depth of its base case).
    bound_depth : int
        Depth of the bounded check of the ``bound`` group.
    cover_depth : int
        Depth searched for the covers.
    suite_groups : tuple
        The groups the test suite checks (the others only ``spikeforge formal``).
    mutations : dict
        Label -> :class:`Mutation`.
    suite_mutation : str
        The mutation the test suite keeps.
    """

    unit = None
    component = None
    params = {}
    prove_depth = 6
    bound_depth = 20
    cover_depth = 20
    suite_groups = ("prove", "bound", "cover")
    mutations = {}
    suite_mutation = None

    def __init__(self, *, mutation=None):
        if mutation is not None and mutation not in self.mutations:
            known = ", ".join(sorted(self.mutations)) or "none"
            raise UnknownMutation(f"unit {self.unit!r} has no mutation {mutation!r} "
                                  f"(mutations: {known})")
        self._mutation = mutation
        #: The properties declared by the last elaboration.
        self.properties = []

    mutation = property(lambda self: self._mutation)

    def build(self):
        """The unit under check (its mutant when a mutation is selected)."""
        cls = self.component
        if self._mutation is not None:
            spec = self.mutations[self._mutation]
            cls = mutant(cls, label=self._mutation, after=spec.after, during=spec.during,
                         under=spec.under)
        return cls(**self.params)

    def check(self, m, checks, dut, internals):
        """Drive ``dut``'s inputs and declare its properties on ``checks``."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        checks = Checks(m)
        dut = self.build()
        fragment = Fragment.get(dut, platform)
        m.submodules.dut = fragment
        self.check(m, checks, dut, Internals(fragment, self.unit))
        self.properties = checks.properties
        return m
