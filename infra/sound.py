"""Separate sound for a film scan: a WAV or Broadcast WAV file beside the frames.

`probe_sound` describes it (codec, rate, channels, exact sample count from its packets, the BWF
`bext` time reference) with the same confined open as every other media file (`infra.media`: the
file protocol only, WAV in the accepted formats). `sound_offset` places it against the picture: a
setting (`--audio-offset`, the recipe's `source.audio_offset`) wins; else, when both the picture
(DPX header or the start-timecode setting) and the sound (BWF time reference) say where they start,
the difference; else 0 (the sound starts with the first frame). The masters carry the sound's packets
unchanged, moved by that offset (`infra.media._CopyRoute`), so PCM stays bit-identical.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from infra.media import MediaError, _av_reason, _existing_file, _open_input, pcm_frame_bytes


@dataclass(frozen=True)
class SoundInfo:
    codec: str
    sample_rate: int
    channels: int
    samples: int  # per channel, counted from the packets
    time_reference: int | None  # BWF: samples since midnight of the first sample, when the file says

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.samples, self.sample_rate)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_sound(path: str | os.PathLike) -> SoundInfo:
    """Describe a sound file with exactly one audio stream (demuxing only); MediaError otherwise."""
    _existing_file(path)
    with _open_input(path, str(path)) as container:
        if container.streams.video:
            raise MediaError(f"sound {str(path)!r} holds video: give a WAV/BWF file as --audio")
        streams = [s for s in container.streams.audio if s.codec_context is not None]
        if len(streams) != 1:
            raise MediaError(f"sound {str(path)!r} has {len(streams)} audio streams; Reel takes one (any channels)")
        stream = streams[0]
        ctx = stream.codec_context
        if not ctx.sample_rate or not ctx.layout.nb_channels:
            raise MediaError(f"sound {str(path)!r}: no sample rate or channel layout")
        samples = 0
        frame_bytes = pcm_frame_bytes(ctx)
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if ctx.name.startswith("pcm_") and frame_bytes:
                    samples += packet.size // frame_bytes
                else:
                    samples += int(packet.duration or 0)
        except Exception as exc:  # av.FFmpegError, OSError
            raise MediaError(f"cannot read sound {str(path)!r}: {_av_reason(exc)}") from None
        ref_text = container.metadata.get("time_reference")
        try:
            time_reference = int(ref_text) if ref_text not in (None, "") else None
        except ValueError:
            time_reference = None
        if samples == 0:
            raise MediaError(f"sound {str(path)!r} holds no samples")
        return SoundInfo(codec=ctx.name, sample_rate=int(ctx.sample_rate), channels=int(ctx.layout.nb_channels),
                         samples=samples, time_reference=time_reference)


def sound_offset(sound: SoundInfo, *, setting: float | None, picture_start_frames: int | None,
                 fps: Fraction) -> tuple[Fraction, str]:
    """(seconds the sound starts after the first frame, where that came from)."""
    if setting is not None:
        return Fraction(setting).limit_denominator(sound.sample_rate), "setting"
    if sound.time_reference is not None and picture_start_frames is not None:
        picture = Fraction(picture_start_frames) / fps
        return Fraction(sound.time_reference, sound.sample_rate) - picture, "bwf-time-reference"
    return Fraction(0), "start"
