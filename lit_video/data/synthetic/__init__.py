"""Generators that write small datasets in the official layouts (for tests, demos and benchmarks).

`synthesize(format_name, out, spec)` writes one; `GENERATORS` is the one table from format name to
generator. A new format adds its generator with `@register_generator("name")`, without editing this
file. Each built-in generator imports its module when it runs, so importing this package (for
`spec.SynthSpec`, say) imports none of what the writers need (PyAV, Lightning, pycocotools).

- `spec`: `SynthSpec`, the motion classes every generator reads its sizes from;
- `classification`: UCF101, HMDB51, Kinetics and Something-Something V2;
- `scene`: the textured moving shapes that `vos` (DAVIS, YouTube-VOS) and `vis` (YouTube-VIS) draw;
- `captions`: MSR-VTT and MSVD.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lit_video.errors import LitVideoError

if TYPE_CHECKING:
    from lit_video.data.synthetic.spec import SynthSpec

# A generator: (out, spec, progress, **options) -> None. `out` is the dataset root, `spec` a
# `spec.SynthSpec` (or the format's own spec), `progress` is called once per video written; the
# keyword options are what only some formats take.
Generator = Callable[..., object]


class SynthesisOptionError(LitVideoError):
    """An option that the format's generator does not take.

    Args:
        option: the option's name, e.g. "valid_every".
        format_name: the format asked for.
        takers: the formats whose generator takes the option, in table order.
    """

    def __init__(self, option: str, format_name: str, takers: list[str]):
        self.option, self.format_name, self.takers = option, format_name, takers
        if takers:
            super().__init__(f"{option} applies to {', '.join(takers)}, not {format_name}")
        else:
            super().__init__(f"{option} is not a synthesis option of any format")


def _ucf101(out: Path, spec: SynthSpec, progress: Callable[[], None], colours: int | None = None) -> None:
    from lit_video.data.synthetic.classification import write_ucf101

    write_ucf101(out, spec, progress, colours=colours)


def _hmdb51(out: Path, spec: SynthSpec, progress: Callable[[], None], colours: int | None = None) -> None:
    from lit_video.data.synthetic.classification import write_hmdb51

    write_hmdb51(out, spec, progress, colours=colours)


def _kinetics(out: Path, spec: SynthSpec, progress: Callable[[], None], colours: int | None = None) -> None:
    from lit_video.data.synthetic.classification import write_kinetics

    write_kinetics(out, spec, progress, colours=colours)


def _ssv2(out: Path, spec: SynthSpec, progress: Callable[[], None], colours: int | None = None) -> None:
    from lit_video.data.synthetic.classification import write_ssv2

    write_ssv2(out, spec, progress, colours=colours)


def _davis(out: Path, spec: SynthSpec, progress: Callable[[], None], valid_every: int | None = None) -> None:
    from lit_video.data.synthetic.vos import as_vos_spec, write_davis

    write_davis(out, as_vos_spec(spec, valid_every=valid_every), progress)


def _youtube_vos(out: Path, spec: SynthSpec, progress: Callable[[], None], valid_every: int | None = None) -> None:
    from lit_video.data.synthetic.vos import as_vos_spec, write_youtube_vos

    write_youtube_vos(out, as_vos_spec(spec, valid_every=valid_every), progress)


def _youtube_vis(out: Path, spec: SynthSpec, progress: Callable[[], None], valid_every: int | None = None,
                 category_colours: bool | None = None) -> None:
    from lit_video.data.synthetic.vis import as_vis_spec, write_youtube_vis

    write_youtube_vis(out, as_vis_spec(spec, valid_every=valid_every, category_colours=category_colours),
                      progress=progress)


def _msrvtt(out: Path, spec: SynthSpec, progress: Callable[[], None]) -> None:
    from lit_video.data.synthetic.captions import write_msrvtt

    write_msrvtt(out, spec, progress)


def _msvd(out: Path, spec: SynthSpec, progress: Callable[[], None]) -> None:
    from lit_video.data.synthetic.captions import write_msvd

    write_msvd(out, spec, progress)


GENERATORS: dict[str, Generator] = {
    "ucf101": _ucf101,
    "hmdb51": _hmdb51,
    "kinetics": _kinetics,
    "ssv2": _ssv2,
    "davis": _davis,
    "youtube-vos": _youtube_vos,
    "youtube-vis": _youtube_vis,
    "msrvtt": _msrvtt,
    "msvd": _msvd,
}


def register_generator(name: str) -> Callable[[Generator], Generator]:
    """Function decorator: make `generator(out, spec, progress, **options)` the generator of format `name`.

    Options are the keyword parameters after `progress`; `synthesize` refuses an option that the
    format's generator does not take.
    """

    def decorate(generator: Generator) -> Generator:
        GENERATORS[name] = generator
        return generator

    return decorate


def generator_options(format_name: str) -> tuple[str, ...]:
    """The keyword options the generator of `format_name` takes (e.g. ("valid_every",))."""
    parameters = list(inspect.signature(generator_of(format_name)).parameters.values())[3:]
    return tuple(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def generator_of(format_name: str) -> Generator:
    """The generator of `format_name`.

    Raises:
        LitVideoError: no generator is registered under that name.
    """
    if format_name not in GENERATORS:
        from lit_video.plugins import load_plugins

        load_plugins()  # a plugin package may register generators of its own formats
    if format_name not in GENERATORS:
        raise LitVideoError(f"unknown dataset format '{format_name}'; known formats: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[format_name]


def synthesize(format_name: str, out: str | Path, spec: SynthSpec, progress: Callable[[], None] = lambda: None,
               **options) -> None:
    """Write a small synthetic dataset of `format_name` under `out`, in that format's official layout.

    Args:
        format_name: a key of `GENERATORS` ("ucf101", "davis", ...).
        out: the dataset root.
        spec: a `spec.SynthSpec` (each format reads its sizes from it) or the format's own spec
            (`VosSynthSpec`, `VisSynthSpec`, `CaptionSynthSpec`).
        progress: called once per video written.
        **options: what only some formats take: `valid_every` (davis, youtube-vos, youtube-vis: hold out
            video index % valid_every == 1), `category_colours` (youtube-vis: a hue per category), `colours`
            (ucf101, hmdb51, kinetics, ssv2: classes are motion x this many colours, see `spec.colour_classes`). None
            means unset: the format's default.

    Raises:
        LitVideoError: an unknown format.
        SynthesisOptionError: an option the format's generator does not take (one line naming both).
    """
    generator = generator_of(format_name)
    options = check_options(format_name, **options)
    generator(Path(out), spec, progress, **options)


def check_options(format_name: str, **options) -> dict:
    """The options that are set (not None), once the generator of `format_name` is known to take each.

    Raises:
        LitVideoError: an unknown format.
        SynthesisOptionError: an option the format's generator does not take.
    """
    generator_of(format_name)
    options = {name: value for name, value in options.items() if value is not None}
    accepted = generator_options(format_name)
    for name in options:
        if name not in accepted:
            raise SynthesisOptionError(name, format_name, [f for f in GENERATORS if name in generator_options(f)])
    return options
