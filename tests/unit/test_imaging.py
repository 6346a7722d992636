"""Checking and re-encoding uploaded images (app/imaging.py); every fixture is made here."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from blurhash_rs import blurhash_decode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageCms, ImageFile

from app.imaging import ImageError, ImageErrorCode, ProcessedImage, Rendition, process, sniff

MB = 1024 * 1024
BASE83 = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~")
HTML = b"<html><script>alert(document.cookie)</script></html>"


def _run(path: Path, **limits: int) -> ProcessedImage:
    limits.setdefault("max_bytes", 20 * MB)
    limits.setdefault("max_pixels", 50_000_000)
    return process(path, **limits)


def _refused(path: Path, **limits: int) -> ImageErrorCode:
    with pytest.raises(ImageError) as raised:
        _run(path, **limits)
    assert raised.value.message
    assert str(path) not in raised.value.message
    return raised.value.code


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _save(tmp_path: Path, name: str, image: Image.Image, fmt: str, **params: Any) -> Path:
    return _write(tmp_path, name, _encoded(image, fmt, **params))


def _source(path: Path) -> Image.Image:
    """The fixture as Pillow reads it, to show it really is what the test needs."""
    with Image.open(path) as image:
        image.load()
        return image


def _near(pixel: Any, expected: tuple[int, ...], tolerance: int) -> bool:
    return all(abs(got - want) <= tolerance for got, want in zip(pixel, expected, strict=True))


def _rendition(result: ProcessedImage, name: str) -> Rendition:
    (found,) = [r for r in result.renditions if r.name == name]
    return found


def _open(rendition: Rendition) -> Image.Image:
    assert rendition.content_type == "image/webp"
    assert sniff(rendition.data[:16]) == "image/webp"
    image = Image.open(io.BytesIO(rendition.data), formats=["WEBP"])
    assert image.size == (rendition.width, rendition.height)
    return image


def _png(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A PNG written chunk by chunk, so the header can claim whatever the test needs."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Incompressible content, so truncating the encoded file really cuts into the pixels."""
    return Image.frombytes(
        "RGB", size, bytes((i * 7919 + seed) * 104729 % 251 for i in range(size[0] * size[1] * 3))
    )


# --- sniffing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"GIF87a\x01\x00\x01\x00\x00\x00\x00,\x00\x00", "image/gif"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"<html><body>hello</body></html>", None),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', None),
        (b"\x00" * 16, None),
        (b"", None),
    ],
)
def test_sniff_decides_by_magic_bytes_alone(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected


# --- metadata and orientation -------------------------------------------------------------


def test_exif_orientation_is_applied_and_no_metadata_survives(tmp_path: Path) -> None:
    # Stored 300x200 with a red block top-left; orientation 6 says "rotate 90 clockwise to
    # view", so the viewer sees 200x300 with the block top-right.
    image = Image.new("RGB", (300, 200), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 60, 60))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "SecretCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    path = _save(tmp_path, "photo.jpg", image, "JPEG", exif=exif, comment=b"my home address")
    with Image.open(path) as source:
        assert source.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the fixture really has GPS

    result = _run(path)

    assert result.source_type == "image/jpeg"
    assert (result.width, result.height) == (200, 300)
    for rendition in result.renditions:
        assert b"Exif" not in rendition.data
        assert b"SecretCam" not in rendition.data
        assert b"my home address" not in rendition.data
        output = _open(rendition)
        assert not output.getexif()
        assert not {"exif", "xmp", "icc_profile", "comment"} & set(output.info)
    full = _open(_rendition(result, "full")).convert("RGB")
    red, _, blue = full.getpixel((full.width - 10, 10))  # type: ignore[misc]
    assert red > 200 > blue
    red, _, blue = full.getpixel((10, 10))  # type: ignore[misc]
    assert blue > 200 > red


def test_a_profiled_image_is_converted_and_the_profile_dropped(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = Image.new("RGB", (40, 40), (200, 30, 30))
    path = _save(tmp_path, "profiled.png", image, "PNG", icc_profile=srgb)
    assert _source(path).info.get("icc_profile")

    full = _open(_rendition(_run(path), "full"))

    assert "icc_profile" not in full.info
    assert _near(full.convert("RGB").getpixel((20, 20)), (200, 30, 30), 8)


def test_an_unreadable_profile_is_ignored(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 40), (200, 30, 30))
    path = _save(tmp_path, "bad-profile.png", image, "PNG", icc_profile=b"not a profile" * 20)

    full = _open(_rendition(_run(path), "full"))

    assert "icc_profile" not in full.info
    red, _, _ = full.convert("RGB").getpixel((20, 20))  # type: ignore[misc]
    assert abs(red - 200) < 8


# --- modes --------------------------------------------------------------------------------


def test_png_alpha_is_kept(tmp_path: Path) -> None:
    image = Image.new("RGBA", (100, 50), (0, 128, 0, 255))
    image.paste((0, 0, 0, 0), (50, 0, 100, 50))
    path = _save(tmp_path, "alpha.png", image, "PNG")

    for rendition in _run(path).renditions:
        output = _open(rendition)
        assert output.mode == "RGBA"
        width, height = output.size
        assert output.getpixel((width // 4, height // 2))[3] == 255  # type: ignore[index]
        assert output.getpixel((width * 3 // 4, height // 2))[3] == 0  # type: ignore[index]


def test_opaque_alpha_is_dropped(tmp_path: Path) -> None:
    path = _save(tmp_path, "opaque.png", Image.new("RGBA", (30, 30), (1, 2, 3, 255)), "PNG")

    assert _open(_rendition(_run(path), "full")).mode == "RGB"


def test_palette_transparency_becomes_alpha(tmp_path: Path) -> None:
    image = Image.new("P", (20, 20), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(0, (0, 0, 10, 20))
    path = _save(tmp_path, "palette.png", image, "PNG", transparency=0)

    full = _open(_rendition(_run(path), "full"))

    assert full.mode == "RGBA"
    assert full.getpixel((2, 10))[3] == 0  # type: ignore[index]
    assert full.getpixel((17, 10))[:2] == (255, 0)  # type: ignore[index]


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = _save(tmp_path, "cmyk.jpg", Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG")
    assert _source(path).mode == "CMYK"

    full = _open(_rendition(_run(path), "full"))

    assert full.mode == "RGB"
    assert _near(full.getpixel((20, 20)), (255, 0, 0), 30)


def test_16_bit_greyscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    # Left half mid grey (32768 of 65535), right half dark grey (4096).
    row = struct.pack("<32H", *[32768] * 32) + struct.pack("<32H", *[4096] * 32)
    image = Image.frombytes("I;16", (64, 8), row * 8)
    path = _save(tmp_path, "grey16.png", image, "PNG")
    assert _source(path).mode == "I;16"

    full = _open(_rendition(_run(path), "full")).convert("L")

    assert abs(full.getpixel((8, 4)) - 128) < 6  # type: ignore[operator]
    assert abs(full.getpixel((56, 4)) - 16) < 6  # type: ignore[operator]


def test_16_bit_rgb_png_is_read(tmp_path: Path) -> None:
    row = b"\x00" + struct.pack(">HHH", 65535, 32768, 0) * 4
    path = _write(tmp_path, "rgb16.png", _png(4, 4, 16, 2, zlib.compress(row * 4)))

    full = _open(_rendition(_run(path), "full")).convert("RGB")

    assert _near(full.getpixel((2, 2)), (255, 128, 0), 12)


# --- animation ----------------------------------------------------------------------------


def _animation(
    colours: list[tuple[int, int, int]], size: tuple[int, int] = (60, 40)
) -> list[Image.Image]:
    frames = []
    for index, colour in enumerate(colours):
        frame = Image.new("RGB", size, colour)
        frame.paste((255, 255, 255), (index * 5, 0, index * 5 + 5, 5))
        frames.append(frame)
    return frames


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
DURATIONS = [100, 200, 50, 300, 120]


def _frames_of(rendition: Rendition) -> tuple[int, list[int], int]:
    image = _open(rendition)
    durations = []
    for index in range(image.n_frames):
        image.seek(index)
        image.load()
        durations.append(image.info["duration"])
    return image.n_frames, durations, image.info["loop"]


def test_animated_gif_becomes_animated_webp(tmp_path: Path) -> None:
    frames = _animation(COLOURS)
    path = _save(
        tmp_path,
        "anim.gif",
        frames[0],
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=DURATIONS,
        loop=0,
    )

    result = _run(path)

    assert result.animated
    assert result.source_type == "image/gif"
    assert _frames_of(_rendition(result, "full")) == (5, DURATIONS, 0)
    assert _open(_rendition(result, "thumb")).n_frames == 1


def test_a_gif_without_loop_block_plays_once(tmp_path: Path) -> None:
    frames = _animation(COLOURS[:2])
    path = _save(
        tmp_path,
        "once.gif",
        frames[0],
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=100,
    )

    assert _frames_of(_rendition(_run(path), "full"))[2] == 1


def test_animated_webp_is_scaled_frame_by_frame(tmp_path: Path) -> None:
    frames = _animation(COLOURS[:3], size=(600, 300))
    path = _save(
        tmp_path,
        "anim.webp",
        frames[0],
        "WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=DURATIONS[:3],
        loop=3,
    )

    result = _run(path, full_size=300, thumb_size=100)

    assert result.animated
    assert (result.width, result.height) == (300, 150)
    assert _frames_of(_rendition(result, "full")) == (3, DURATIONS[:3], 3)
    assert (_rendition(result, "thumb").width, _rendition(result, "thumb").height) == (100, 50)


def test_too_many_frames_are_refused(tmp_path: Path) -> None:
    frames = _animation(COLOURS)
    path = _save(tmp_path, "long.gif", frames[0], "GIF", save_all=True, append_images=frames[1:])

    assert _refused(path, max_frames=4) == ImageErrorCode.TOO_MANY_PIXELS
    assert _run(path, max_frames=5).animated


def test_pixels_of_every_frame_count(tmp_path: Path) -> None:
    frames = _animation(COLOURS)  # 5 frames of 60x40 = 12000 pixels
    path = _save(tmp_path, "big.gif", frames[0], "GIF", save_all=True, append_images=frames[1:])

    assert _refused(path, max_pixels=11_999) == ImageErrorCode.TOO_MANY_PIXELS
    assert _run(path, max_pixels=12_000).animated


# --- sizes --------------------------------------------------------------------------------


def test_small_images_are_never_upscaled(tmp_path: Path) -> None:
    path = _save(tmp_path, "small.png", Image.new("RGB", (50, 30), (9, 9, 9)), "PNG")

    result = _run(path)

    assert (result.width, result.height) == (50, 30)
    assert [(r.name, r.width, r.height) for r in result.renditions] == [
        ("full", 50, 30),
        ("thumb", 50, 30),
    ]


def test_big_images_are_scaled_to_both_sizes(tmp_path: Path) -> None:
    path = _save(tmp_path, "big.jpg", Image.new("RGB", (3000, 1500), (9, 90, 9)), "JPEG")

    result = _run(path)

    assert (result.width, result.height) == (2048, 1024)
    thumb = _rendition(result, "thumb")
    assert (thumb.width, thumb.height) == (400, 200)
    assert _open(thumb).size == (400, 200)


def test_tall_images_scale_by_their_longest_side(tmp_path: Path) -> None:
    path = _save(tmp_path, "tall.png", Image.new("L", (300, 1000), 100), "PNG")

    result = _run(path, full_size=500, thumb_size=100)

    assert [(r.width, r.height) for r in result.renditions] == [(150, 500), (30, 100)]


# --- blurhash -----------------------------------------------------------------------------


def test_blurhash_is_valid_and_tells_images_apart(tmp_path: Path) -> None:
    red = Image.new("RGB", (200, 100), (220, 20, 20))
    split = Image.new("RGB", (200, 100), (20, 20, 220))
    split.paste((240, 240, 240), (0, 0, 100, 100))

    hashes = [
        _run(_save(tmp_path, f"{n}.png", image, "PNG")).blurhash
        for n, image in enumerate([red, split])
    ]

    assert hashes[0] != hashes[1]
    for value in hashes:
        # 4x3 components: size flag, max AC, 4 characters of DC, 2 per each of 11 AC terms.
        assert len(value) == 28
        assert set(value) <= BASE83
        assert blurhash_decode(value, 8, 6).size == (8, 6)
    red_pixel = blurhash_decode(hashes[0], 8, 6).getpixel((4, 3))
    assert red_pixel[0] > 150 > red_pixel[2]  # type: ignore[index]


# --- refusals -----------------------------------------------------------------------------


def test_html_named_jpg_is_unsupported(tmp_path: Path) -> None:
    assert (
        _refused(_write(tmp_path, "cat.jpg", b"<!DOCTYPE html>" + HTML))
        == ImageErrorCode.UNSUPPORTED_TYPE
    )


def test_svg_is_unsupported(tmp_path: Path) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert _refused(_write(tmp_path, "logo.png", svg)) == ImageErrorCode.UNSUPPORTED_TYPE


def test_empty_file_is_unsupported(tmp_path: Path) -> None:
    # No magic bytes at all: we cannot even say which type it pretends to be.
    assert _refused(_write(tmp_path, "empty.jpg", b"")) == ImageErrorCode.UNSUPPORTED_TYPE


def test_gif_script_polyglot_is_corrupt(tmp_path: Path) -> None:
    assert _refused(_write(tmp_path, "x.gif", b"GIF89a" + HTML)) == ImageErrorCode.CORRUPT


def test_jpeg_magic_then_html_is_corrupt(tmp_path: Path) -> None:
    assert _refused(_write(tmp_path, "x.jpg", b"\xff\xd8\xff\xe0" + HTML)) == ImageErrorCode.CORRUPT


def test_png_header_then_garbage_is_corrupt(tmp_path: Path) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    assert _refused(_write(tmp_path, "x.png", data)) == ImageErrorCode.CORRUPT


def test_real_gif_followed_by_html_is_re_encoded_without_it(tmp_path: Path) -> None:
    gif = _encoded(Image.new("P", (30, 30), 3), "GIF")
    path = _write(tmp_path, "poly.gif", gif + HTML)

    result = _run(path)

    assert result.source_type == "image/gif"
    assert not result.animated
    for rendition in result.renditions:
        assert b"<script" not in rendition.data
        assert b"alert" not in rendition.data
        assert rendition.data[:4] == b"RIFF"


def test_truncated_jpeg_is_corrupt(tmp_path: Path) -> None:
    data = _encoded(_noise((200, 200)), "JPEG", quality=95)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    assert _refused(_write(tmp_path, "cut.jpg", data[: len(data) // 2])) == ImageErrorCode.CORRUPT


def test_truncated_png_is_corrupt(tmp_path: Path) -> None:
    data = _encoded(_noise((200, 200)), "PNG")
    assert _refused(_write(tmp_path, "cut.png", data[: len(data) // 2])) == ImageErrorCode.CORRUPT


def test_truncated_animation_is_corrupt(tmp_path: Path) -> None:
    frames = [_noise((80, 80), seed) for seed in range(4)]
    data = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    # Cut inside the last frame's pixels. (A cut exactly between frames leaves a shorter GIF
    # that Pillow, like browsers, shows as such.)
    assert _refused(_write(tmp_path, "cut.gif", data[:-100])) == ImageErrorCode.CORRUPT


def test_oversized_file_is_too_large(tmp_path: Path) -> None:
    path = _save(tmp_path, "ok.png", Image.new("RGB", (10, 10)), "PNG")
    size = path.stat().st_size

    assert _refused(path, max_bytes=size - 1) == ImageErrorCode.TOO_LARGE
    assert _run(path, max_bytes=size).width == 10


@pytest.mark.parametrize(
    ("side", "max_pixels"),
    [
        (20_000, 50_000_000),  # over twice Pillow's limit: its error fires in `open`
        (10_000, 10**12),  # between Pillow's warning and error: still refused, never a warning
        (5_000, 1_000_000),  # under Pillow's limits: our own header check
    ],
)
def test_pixel_bombs_are_refused_from_the_header(
    tmp_path: Path, side: int, max_pixels: int
) -> None:
    # A header claiming side x side 1-bit pixels over a few bytes of IDAT that could never
    # fill it: decoding would say CORRUPT, so TOO_MANY_PIXELS proves nothing was decoded.
    path = _write(tmp_path, "bomb.png", _png(side, side, 1, 0, zlib.compress(b"\x00" * 64)))

    started = time.perf_counter()
    assert _refused(path, max_pixels=max_pixels) == ImageErrorCode.TOO_MANY_PIXELS
    assert time.perf_counter() - started < 1.0


def test_truncated_images_are_never_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(tmp_path, "ok.png", Image.new("RGB", (10, 10)), "PNG")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)

    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        _run(path)


# --- any input at all ---------------------------------------------------------------------


def _samples() -> list[bytes]:
    still = _noise((24, 16))
    frames = _animation(COLOURS[:3], size=(24, 16))
    return [
        _encoded(still, "JPEG"),
        _encoded(still, "PNG"),
        _encoded(still, "WEBP"),
        _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        _encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
    ]


SAMPLES = _samples()
MAGICS = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP"]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


_ANY_UPLOAD = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda magic, tail: magic + tail, st.sampled_from(MAGICS), st.binary(max_size=512)),
    _mutated(),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_ANY_UPLOAD)
def test_any_bytes_give_an_image_or_an_image_error(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, "upload", data)
    try:
        result = _run(path, max_pixels=1_000_000)
    except ImageError as error:
        code: ImageErrorCode | None = error.code
    else:
        code = None
        assert [r.name for r in result.renditions] == ["full", "thumb"]
        assert all(r.data[:4] == b"RIFF" for r in result.renditions)
    assert code is None or code in ImageErrorCode
