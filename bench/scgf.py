"""SuperCollider synth definitions written from Python: the SCgf file format, version 2.

There is no sclang on the benchmark machine (Debian's supercollider-server is scsynth alone), so
the one synth the scsynth benchmark needs is built here as a unit-generator graph and encoded as
the server reads it (``/d_recv``). Format: SuperCollider's "Synth Definition File Format" help
page; every number big-endian, strings as one length byte plus ASCII.

Usage::

    graph = SynthGraph("tone", {"freq": 440.0, "amp": 0.1})
    freq, amp = graph.controls()
    osc = graph.ugen("SinOsc", AR, [freq, 0.0])
    graph.ugen("Out", AR, [0.0, graph.binary("*", AR, osc, amp)], outputs=0)
    data = scgf_file([graph])
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

IR, KR, AR = 0, 1, 2  # calculation rates: scalar, control, audio
BINARY_OPS = {"+": 0, "-": 1, "*": 2}  # BinaryOpUGen special indices


@dataclass(frozen=True)
class Output:
    """Output ``index`` of unit generator ``ugen`` (its position in the graph)."""

    ugen: int
    index: int = 0


@dataclass
class UGen:
    name: str
    rate: int
    inputs: list  # of Output or float (a constant)
    outputs: int
    special: int = 0


@dataclass
class SynthGraph:
    """A synth definition: named parameters (control-rate, with defaults) and unit generators in
    the order the server runs them (every input must come from an earlier one)."""

    name: str
    parameters: dict[str, float]
    ugens: list[UGen] = field(default_factory=list)

    def ugen(self, name: str, rate: int, inputs: list, outputs: int = 1, special: int = 0) -> Output:
        for source in inputs:
            if isinstance(source, Output) and source.ugen >= len(self.ugens):
                raise ValueError(f"{name}: input from a unit generator not yet in the graph")
        self.ugens.append(UGen(name, rate, list(inputs), outputs, special))
        return Output(len(self.ugens) - 1)

    def controls(self) -> list[Output]:
        """The ``Control`` unit generator giving every parameter (call first); one output each."""
        control = self.ugen("Control", KR, [], outputs=len(self.parameters)).ugen
        return [Output(control, index) for index in range(len(self.parameters))]

    def binary(self, op: str, rate: int, a, b) -> Output:
        return self.ugen("BinaryOpUGen", rate, [a, b], special=BINARY_OPS[op])

    def encode(self) -> bytes:
        constants: list[float] = []
        for ugen in self.ugens:
            for source in ugen.inputs:
                if not isinstance(source, Output) and float(source) not in constants:
                    constants.append(float(source))
        out = [_pstring(self.name), struct.pack(">i", len(constants)),
               struct.pack(f">{len(constants)}f", *constants),
               struct.pack(">i", len(self.parameters)),
               struct.pack(f">{len(self.parameters)}f", *self.parameters.values()),
               struct.pack(">i", len(self.parameters))]
        for index, name in enumerate(self.parameters):
            out += [_pstring(name), struct.pack(">i", index)]
        out.append(struct.pack(">i", len(self.ugens)))
        for ugen in self.ugens:
            out += [_pstring(ugen.name),
                    struct.pack(">biih", ugen.rate, len(ugen.inputs), ugen.outputs, ugen.special)]
            for source in ugen.inputs:
                if isinstance(source, Output):
                    out.append(struct.pack(">ii", source.ugen, source.index))
                else:
                    out.append(struct.pack(">ii", -1, constants.index(float(source))))
            out.append(bytes(ugen.rate for _ in range(ugen.outputs)))  # outputs run at its rate
        out.append(struct.pack(">h", 0))  # no variants
        return b"".join(out)


def _pstring(text: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > 255:
        raise ValueError(f"name too long for a synth definition: {text!r}")
    return bytes([len(raw)]) + raw


def scgf_file(graphs: list[SynthGraph]) -> bytes:
    """The bytes of an SCgf version 2 file holding ``graphs`` (what ``/d_recv`` takes as a blob)."""
    return b"SCgf" + struct.pack(">ih", 2, len(graphs)) + b"".join(g.encode() for g in graphs)
