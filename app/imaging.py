"""Decide, check and re-encode an uploaded image: we only ever serve bytes we encoded ourselves.

The type comes from the magic bytes alone (never the name or the client's content type), the
file is decoded by the one Pillow plugin for that type, every limit is checked on the header
before any pixel is decoded, and the output is fresh WebP with no metadata from the upload.

Synchronous and CPU-bound, reading only the given file: callers run `process` in a worker
thread. Nothing process-global is changed (`Image.MAX_IMAGE_PIXELS`, warning filters,
`ImageFile.LOAD_TRUNCATED_IMAGES` are read, never written), so concurrent calls are safe.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import cast

from blurhash_rs import blurhash_encode
from PIL import Image, ImageCms, ImageFile, ImageOps

WEBP = "image/webp"
_WEBP_QUALITY = 82
_BLURHASH_COMPONENTS = (4, 3)
_SNIFF_BYTES = 16

# Sniffed type -> the Pillow plugin allowed to open it, and the formats that plugin may report.
# A JPEG with a Multi-Picture index (many phone cameras) opens as MPO: its first frame is the
# photo, the others are previews or depth maps we never serve.
_PILLOW_FORMATS: dict[str, tuple[str, frozenset[str]]] = {
    "image/jpeg": ("JPEG", frozenset({"JPEG", "MPO"})),
    "image/png": ("PNG", frozenset({"PNG"})),
    "image/webp": ("WEBP", frozenset({"WEBP"})),
    "image/gif": ("GIF", frozenset({"GIF"})),
}
# Formats whose extra frames are an animation (GIF, WebP, APNG), as opposed to MPO's extras.
_ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG"})

# What Pillow raises on input its parsers or decoders reject. A Warning can arrive here only
# when warnings are configured as errors (the test suite): Pillow warns on malformed
# metadata it then works around (an invalid APNG, a broken MPO index), so refusing is safe.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    SyntaxError,  # Pillow's plugins signal a malformed header or chunk with it
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    Warning,
)

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageErrorCode(StrEnum):
    """Why an upload was refused."""

    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    CORRUPT = "corrupt"


class ImageError(Exception):
    """An upload that cannot become an image; `message` is safe to show to its uploader."""

    def __init__(self, code: ImageErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ImageError({self.code!s}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class Rendition:
    """One encoded size of an image: "full" or "thumb"."""

    name: str
    content_type: str
    width: int
    height: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    """An accepted upload: what it was, and the renditions we serve instead of it."""

    source_type: str
    width: int
    height: int
    animated: bool
    blurhash: str
    renditions: tuple[Rendition, ...]


def sniff(head: bytes) -> str | None:
    """The image type from the first bytes (>= 16), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def process(
    path: Path,
    *,
    max_bytes: int,
    max_pixels: int,
    full_size: int = 2048,
    thumb_size: int = 400,
    max_frames: int = 300,
) -> ProcessedImage:
    """Check the upload at `path` and re-encode it as WebP renditions, or raise ImageError.

    `max_pixels` bounds width x height, times the frame count for animations; above Pillow's
    own `Image.MAX_IMAGE_PIXELS` Pillow refuses first, so the lower of the two applies.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone switched Pillow to accept truncated files process-wide: fail closed.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    if path.stat().st_size > max_bytes:
        raise ImageError(ImageErrorCode.TOO_LARGE, f"The file is larger than {max_bytes} bytes.")
    with path.open("rb") as fp:
        source_type = sniff(fp.read(_SNIFF_BYTES))
        if source_type is None:
            # An empty file lands here too: it is no image type at all.
            raise ImageError(
                ImageErrorCode.UNSUPPORTED_TYPE, "Only JPEG, PNG, WebP and GIF images are accepted."
            )
        plugin, reported = _PILLOW_FORMATS[source_type]
        fp.seek(0)
        try:
            with Image.open(fp, formats=[plugin]) as image:
                if image.format not in reported:
                    raise ImageError(ImageErrorCode.CORRUPT, _corrupt_message(source_type))
                return _process_open(
                    image,
                    source_type,
                    max_pixels=_pixel_limit(max_pixels),
                    full_size=full_size,
                    thumb_size=thumb_size,
                    max_frames=max_frames,
                )
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow's own header check (in `open` or while seeking a GIF whose frames grow
            # the canvas) fired before ours; the warning arrives as an exception only when
            # warnings are errors, otherwise our check below refuses the same image.
            raise ImageError(ImageErrorCode.TOO_MANY_PIXELS, _pixels_message()) from exc
        except _DECODE_ERRORS as exc:
            raise ImageError(ImageErrorCode.CORRUPT, _corrupt_message(source_type)) from exc


def _pixel_limit(max_pixels: int) -> int:
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return max_pixels if pillow_limit is None else min(max_pixels, pillow_limit)


def _pixels_message() -> str:
    return "The image has too many pixels."


def _corrupt_message(source_type: str) -> str:
    kind = source_type.removeprefix("image/").upper()
    return f"The file is not a valid {kind} image, or it is incomplete."


def _process_open(
    image: Image.Image,
    source_type: str,
    *,
    max_pixels: int,
    full_size: int,
    thumb_size: int,
    max_frames: int,
) -> ProcessedImage:
    # Everything up to the first `load()` reads headers only.
    frame_count = getattr(image, "n_frames", 1) if image.format in _ANIMATED_FORMATS else 1
    if frame_count > max_frames:
        raise ImageError(
            ImageErrorCode.TOO_MANY_PIXELS, f"The animation has more than {max_frames} frames."
        )
    _check_pixels(image, frame_count, max_pixels)

    if frame_count == 1:
        image.load()
        still = _fit(_to_srgb(_upright(image)), full_size)
        frames = [still]
        full_data = _encode_still(still)
    else:
        frames, durations, loop = _decode_animation(image, frame_count, max_pixels)
        frames = [_fit(frame, full_size) for frame in frames]
        full_data = _encode_animation(frames, durations, loop)

    full = frames[0]
    thumb = _fit(full, thumb_size)
    return ProcessedImage(
        source_type=source_type,
        width=full.width,
        height=full.height,
        animated=frame_count > 1,
        blurhash=_blurhash(thumb),
        renditions=(
            Rendition("full", WEBP, full.width, full.height, full_data),
            Rendition("thumb", WEBP, thumb.width, thumb.height, _encode_still(thumb)),
        ),
    )


def _check_pixels(image: Image.Image, frame_count: int, max_pixels: int) -> None:
    width, height = image.size
    if width * height * frame_count > max_pixels:
        raise ImageError(ImageErrorCode.TOO_MANY_PIXELS, _pixels_message())


def _decode_animation(
    image: Image.Image, frame_count: int, max_pixels: int
) -> tuple[list[Image.Image], list[int], int]:
    """Every frame as RGBA on one canvas, with its duration (ms), and the loop count."""
    # No NETSCAPE block in a GIF means "play once"; WebP and APNG always say.
    loop = int(image.info.get("loop", 1))
    frames: list[Image.Image] = []
    durations: list[int] = []
    for frame in _frames(image, frame_count):
        # A GIF frame may extend past the logical screen, and Pillow then grows the canvas.
        _check_pixels(frame, frame_count, max_pixels)
        durations.append(round(float(frame.info.get("duration", 0))))
        frames.append(_to_srgb(_upright(frame)).convert("RGBA"))
    canvas = (max(f.width for f in frames), max(f.height for f in frames))
    return [_on_canvas(f, canvas) for f in frames], durations, loop


def _frames(image: Image.Image, frame_count: int) -> Iterator[Image.Image]:
    for index in range(frame_count):
        image.seek(index)
        image.load()  # sets this frame's duration (WebP) and decodes it fully
        yield image


def _on_canvas(frame: Image.Image, canvas: tuple[int, int]) -> Image.Image:
    if frame.size == canvas:
        return frame
    padded = Image.new("RGBA", canvas, (0, 0, 0, 0))
    padded.paste(frame, (0, 0))
    return padded


def _upright(image: Image.Image) -> Image.Image:
    """A copy turned as its EXIF Orientation says; the caller has already decoded `image`."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        # Unreadable EXIF: the orientation is unknown, and the pixels (already decoded) are
        # fine. Show them as stored rather than refuse the photo.
        return image.copy()


def _to_srgb(image: Image.Image) -> Image.Image:
    """RGB or RGBA in sRGB, with no metadata at all (EXIF, GPS, XMP, comments, ICC).

    An embedded ICC profile is applied, not dropped: the output carries no profile, and a
    viewer assumes sRGB, so a wide-gamut (Display P3, Adobe RGB) or CMYK upload would
    otherwise show with wrong colours. A profile that cannot be read or does not fit the
    pixels is ignored, as browsers do.
    """
    icc = image.info.get("icc_profile")
    image = _eight_bit(image)
    alpha = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    colour = image.convert(image.mode.removesuffix("A")) if alpha is not None else image
    rgb = _apply_profile(colour, icc) if icc else None
    if rgb is None:
        rgb = colour.convert("RGB")
    if alpha is not None and _any_transparency(alpha):
        rgb.putalpha(alpha)
    rgb.info = {}
    return rgb


def _any_transparency(alpha: Image.Image) -> bool:
    lowest = cast("int", alpha.getextrema()[0])  # a single band: (min, max)
    return lowest < 255


def _eight_bit(image: Image.Image) -> Image.Image:
    """The image in L, LA, RGB, RGBA or CMYK; transparency made an alpha channel."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # convert("L") would clip every value above 255 to white: scale 16 bits to 8.
        return image.point(lambda value: value / 256).convert("L")
    if mode == "F":
        return image.convert("L")
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        if "transparency" in image.info and mode in ("L", "RGB"):
            return image.convert(mode + "A")
        return image
    if mode == "1":
        return image.convert("L")
    has_alpha = mode in ("PA", "RGBa", "La") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _apply_profile(colour: Image.Image, icc: bytes) -> Image.Image | None:
    """`colour` (L, RGB or CMYK) converted from its ICC profile to sRGB RGB, or None."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(colour, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    return converted


def _fit(image: Image.Image, longest: int) -> Image.Image:
    """Scaled down (never up) so that its longer side is at most `longest`."""
    width, height = image.size
    if max(width, height) <= longest:
        return image
    scale = longest / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode_still(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # No exif=, icc_profile= or xmp=: the WebP writer takes metadata only from these.
    image.save(buffer, "WEBP", quality=_WEBP_QUALITY)
    return buffer.getvalue()


def _encode_animation(frames: list[Image.Image], durations: list[int], loop: int) -> bytes:
    buffer = io.BytesIO()
    # libwebp merges identical consecutive frames into one longer frame: the timing is kept.
    frames[0].save(
        buffer,
        "WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=loop,
        quality=_WEBP_QUALITY,
        background=(0, 0, 0, 0),
    )
    return buffer.getvalue()


def _blurhash(thumb: Image.Image) -> str:
    # The encoder drops alpha without compositing: flatten onto white, like most pages.
    if thumb.mode == "RGBA":
        flat = Image.new("RGB", thumb.size, (255, 255, 255))
        flat.paste(thumb, mask=thumb.getchannel("A"))
        thumb = flat
    x_components, y_components = _BLURHASH_COMPONENTS
    return blurhash_encode(thumb, x_components, y_components)
