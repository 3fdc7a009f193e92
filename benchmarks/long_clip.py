"""Build a long input from a short clip by repeating its packets (no re-encoding): for benchmarks
of throughput and memory at scale, since the shared clips are all under a minute."""

from __future__ import annotations

import sys
from pathlib import Path

import av


def _stream_spans(source: Path) -> dict[int, int]:
    """Per stream, the span of one copy in its own time base (first dts to last dts + duration)."""
    first: dict[int, int] = {}
    end: dict[int, int] = {}
    with av.open(str(source)) as clip:
        for packet in clip.demux():
            if packet.dts is None:
                continue
            index = packet.stream.index
            first.setdefault(index, packet.dts)
            end[index] = max(end.get(index, packet.dts), packet.dts + (packet.duration or 0))
    return {index: end[index] - first[index] for index in first}


def repeat_clip(source: Path, target: Path, seconds: float) -> Path:
    """Write `target`: `source` repeated (packets re-timed) to at least `seconds` long."""
    with av.open(str(source)) as probe:
        duration = probe.duration / av.time_base
    repeats = max(1, int(-(-seconds // duration)))
    spans = _stream_spans(source)
    with av.open(str(target), "w") as out:
        with av.open(str(source)) as first:
            streams = {}
            for stream in (*first.streams.video[:1], *first.streams.audio[:1]):
                streams[stream.index] = out.add_stream_from_template(stream)
        for k in range(repeats):
            with av.open(str(source)) as clip:
                wanted = [s for s in clip.streams if s.index in streams]
                for packet in clip.demux(wanted):
                    if packet.dts is None:
                        continue
                    shift = k * spans[packet.stream.index]
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
    return target


if __name__ == "__main__":
    repeat_clip(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
