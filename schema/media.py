"""Media over GraphQL: the Media type, uploads (direct to storage, or through the
application as a multipart request), alt text and focus point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from enum import Enum
from typing import Annotated, cast

import strawberry
from starlette.datastructures import UploadFile
from strawberry import relay
from strawberry.file_uploads import Upload
from strawberry.types import Info

from app.errors import DomainError, ErrorCode
from app.ids import parse_id
from app.models import MediaPurpose as MediaPurposeModel
from app.models import MediaState as MediaStateModel
from app.services.media import Focus
from app.services.media_processing import UPLOAD_MISSING
from app.services.media_purge import PROCESSING_FAILED
from app.services.media_reads import MediaView
from providers.storage.base import PresignedUpload
from schema.context import Context
from schema.errors import MutationError, code, error_codes
from schema.results import INPUT, ResultTypes, decode_id, parse_global_id, result_union

UPLOAD_CHUNK = 256 * 1024


@strawberry.enum(description="Where a medium is in its life.")
class MediaState(Enum):
    PENDING = strawberry.enum_value(
        MediaStateModel.PENDING.value, description="Waiting for its file (finalizeUpload)."
    )
    PROCESSING = strawberry.enum_value(
        MediaStateModel.PROCESSING.value, description="The file arrived and is being processed."
    )
    READY = strawberry.enum_value(
        MediaStateModel.READY.value, description="Processed: it has URLs and may be attached."
    )
    FAILED = strawberry.enum_value(
        MediaStateModel.FAILED.value,
        description="The file was refused or could not be processed (see errorCode); nothing "
        "of it was kept.",
    )


@strawberry.enum(description="What a medium is for.")
class MediaPurpose(Enum):
    POST = strawberry.enum_value(MediaPurposeModel.POST.value, description="Attached to a post.")
    AVATAR = strawberry.enum_value(
        MediaPurposeModel.AVATAR.value, description="An account's picture."
    )
    HEADER = strawberry.enum_value(
        MediaPurposeModel.HEADER.value, description="An account's header image."
    )


@strawberry.enum(description="Why processing refused a file, or did not finish.")
class MediaErrorCode(Enum):
    UNSUPPORTED_TYPE = strawberry.enum_value(
        "unsupported_type", description="Not a JPEG, PNG, WebP or GIF image (by its content)."
    )
    TOO_LARGE = strawberry.enum_value(
        "too_large", description="Larger than the upload limit (an operator setting)."
    )
    TOO_MANY_PIXELS = strawberry.enum_value(
        "too_many_pixels", description="More pixels (or frames) than allowed."
    )
    CORRUPT = strawberry.enum_value("corrupt", description="Damaged or truncated image data.")
    UPLOAD_MISSING = strawberry.enum_value(
        UPLOAD_MISSING, description="The uploaded file disappeared before processing."
    )
    PROCESSING_FAILED = strawberry.enum_value(
        PROCESSING_FAILED,
        description="Processing did not finish in time (storage failed throughout); upload "
        "the file again.",
    )


@strawberry.type(description="The point of an image to keep in view when it is cropped.")
class FocusPoint:
    x: float = strawberry.field(description="-1 (left edge) to 1 (right edge); 0 the centre.")
    y: float = strawberry.field(description="-1 (bottom edge) to 1 (top edge); 0 the centre.")


@strawberry.input(description="The point of an image to keep in view when it is cropped.")
class FocusInput:
    x: float = strawberry.field(description="-1 (left edge) to 1 (right edge); 0 the centre.")
    y: float = strawberry.field(description="-1 (bottom edge) to 1 (top edge); 0 the centre.")

    def to_focus(self) -> Focus:
        return Focus(self.x, self.y)


def _media_url(info: Info[Context, None], key: str | None, view: MediaView) -> str | None:
    if key is None or view.state is not MediaStateModel.READY:
        return None
    request = info.context.request
    origin = f"{request.url.scheme.replace('ws', 'http')}://{request.url.netloc}"
    origin += request.scope.get("root_path", "")
    return info.context.services.media.links.url(key, origin=origin, public=view.public)


@strawberry.type(description="An uploaded image and its renditions.")
class Media:
    alt_text: str = strawberry.field(description="A description for people who cannot see it.")
    width: int | None = strawberry.field(description="Width of the full image, once ready.")
    height: int | None = strawberry.field(description="Height of the full image, once ready.")
    blurhash: str | None = strawberry.field(
        description="A BlurHash placeholder to show while the image loads, once ready."
    )
    animated: bool = strawberry.field(description="Whether it is an animation.")
    error_message: str | None = strawberry.field(
        description="Why processing refused the file, for people; null unless failed."
    )

    @classmethod
    def is_type_of(cls, obj: object, info: Info[Context, None]) -> bool:
        return isinstance(obj, (cls, MediaView))

    @strawberry.field(description="The medium's ID.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(relay.to_base64("Media", cast("MediaView", self).id))

    @strawberry.field(description="Where it is in its life.")
    def state(self) -> MediaState:
        return MediaState(cast("MediaView", self).state.value)

    @strawberry.field(description="What it is for.")
    def purpose(self) -> MediaPurpose:
        return MediaPurpose(cast("MediaView", self).purpose.value)

    @strawberry.field(description="The point to keep in view when cropping.")
    def focus(self) -> FocusPoint:
        view = cast("MediaView", self)
        return FocusPoint(x=view.focus_x, y=view.focus_y)

    @strawberry.field(description="Why processing refused the file; null unless failed.")
    def error_code(self) -> MediaErrorCode | None:
        code = cast("MediaView", self).error_code
        return MediaErrorCode[code.upper()] if code in _ERROR_CODES else None

    @strawberry.field(
        description="The full image (re-encoded, at most the operator's full size), once "
        "ready; signed and expiring unless everyone may see it."
    )
    def url(self, info: Info[Context, None]) -> str | None:
        view = cast("MediaView", self)
        return _media_url(info, view.full_key, view)

    @strawberry.field(description="A small rendition for previews, once ready; as `url`.")
    def thumbnail_url(self, info: Info[Context, None]) -> str | None:
        view = cast("MediaView", self)
        return _media_url(info, view.thumb_key, view)


_ERROR_CODES = {member.name.lower() for member in MediaErrorCode}


def as_media(view: MediaView) -> Media:
    """Media reads the view's attributes directly (see `is_type_of`)."""
    return cast("Media", view)


# --- inputs and payloads -------------------------------------------------------------------


@strawberry.input(description="A medium to upload.")
class CreateUploadInput:
    purpose: MediaPurpose = strawberry.field(description="What it is for.")
    content_type: str = strawberry.field(
        description="image/jpeg, image/png, image/webp or image/gif (checked again on the "
        "content); bound into the direct-upload URL's policy."
    )
    byte_size: int = strawberry.field(
        description="The file's size in bytes, up to the upload limit (an operator setting)."
    )
    alt_text: str | None = strawberry.field(
        default=None, description="A description for people who cannot see it (up to 1,500)."
    )
    focus: FocusInput | None = strawberry.field(
        default=None, description="The point to keep in view when cropping."
    )


@strawberry.input(description="A pending upload whose file has been sent.")
class FinalizeUploadInput:
    id: strawberry.ID = strawberry.field(description="The medium createUpload returned.")


@strawberry.input(description="A file sent through the application (a multipart request).")
class UploadMediaInput:
    file: Upload = strawberry.field(
        description="The file, by the GraphQL multipart request spec; the request needs an "
        "Apollo-Require-Preflight header. A part typed application/octet-stream (or not "
        "typed) is judged by its content alone."
    )
    purpose: MediaPurpose = strawberry.field(
        default=MediaPurpose.POST, description="What it is for (ignored with `id`)."
    )
    id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A pending medium of createUpload to send the file of; a new one if null.",
    )
    alt_text: str | None = strawberry.field(
        default=None, description="A description for people who cannot see it (up to 1,500)."
    )
    focus: FocusInput | None = strawberry.field(
        default=None, description="The point to keep in view when cropping."
    )


@strawberry.input(description="New settings of one of the viewer's media.")
class UpdateMediaInput:
    id: strawberry.ID = strawberry.field(description="The medium.")
    alt_text: str | None = strawberry.field(
        default=None, description="The new alt text (up to 1,500 characters); null keeps it."
    )
    focus: FocusInput | None = strawberry.field(
        default=None, description="The new focus point; null keeps it."
    )


@strawberry.type(description="A name and its value.")
class FormField:
    name: str = strawberry.field(description="The name.")
    value: str = strawberry.field(description="The value.")


@strawberry.type(description="How to send a file straight to storage.")
class DirectUpload:
    url: str = strawberry.field(description="Where to send it.")
    method: str = strawberry.field(
        description="PUT: the file as the body, with `headers`. POST: a form of `fields`, "
        "then the file in a part named `file`."
    )
    expires_at: datetime = strawberry.field(description="When the URL stops working.")
    headers: list[FormField] = strawberry.field(description="Headers to send (PUT).")
    fields: list[FormField] = strawberry.field(description="Form fields to send first (POST).")


@strawberry.type(description="The medium as it is now.")
class MediaPayload:
    media: Media = strawberry.field(description="The medium.")


@strawberry.type(description="A pending medium, and where to send its file.")
class CreateUploadSuccess:
    media: Media = strawberry.field(description="The medium, pending.")
    upload: DirectUpload | None = strawberry.field(
        description="Where to send the file, then call finalizeUpload; null when storage "
        "takes no direct uploads: send it with uploadMedia and this medium's id."
    )


@error_codes("createUpload")
class CreateUploadErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    UNSUPPORTED_MEDIA_TYPE = code(ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    MEDIA_TOO_LARGE = code(ErrorCode.MEDIA_TOO_LARGE)
    UNAVAILABLE = code(ErrorCode.UNAVAILABLE)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    TEXT_TOO_LONG = code(ErrorCode.TEXT_TOO_LONG)


@strawberry.type(description="createUpload failed; nothing was created.")
class CreateUploadError(MutationError):
    code: CreateUploadErrorCode = strawberry.field(description="What went wrong.")


CreateUploadResult = Annotated[
    CreateUploadSuccess | CreateUploadError, result_union("createUpload")
]
CREATE_UPLOAD = ResultTypes(CreateUploadSuccess, CreateUploadError, CreateUploadErrorCode)


@strawberry.type(description="The file is being processed (poll the medium's state).")
class FinalizeUploadSuccess(MediaPayload):
    pass


@error_codes("finalizeUpload")
class FinalizeUploadErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    UPLOAD_MISSING = code(ErrorCode.UPLOAD_MISSING)
    MEDIA_TOO_LARGE = code(ErrorCode.MEDIA_TOO_LARGE)
    UNAVAILABLE = code(ErrorCode.UNAVAILABLE)


@strawberry.type(description="finalizeUpload failed; the medium is still pending.")
class FinalizeUploadError(MutationError):
    code: FinalizeUploadErrorCode = strawberry.field(description="What went wrong.")


FinalizeUploadResult = Annotated[
    FinalizeUploadSuccess | FinalizeUploadError, result_union("finalizeUpload")
]
FINALIZE_UPLOAD = ResultTypes(FinalizeUploadSuccess, FinalizeUploadError, FinalizeUploadErrorCode)


@strawberry.type(description="The file is stored and being processed (poll the medium's state).")
class UploadMediaSuccess(MediaPayload):
    pass


@error_codes("uploadMedia")
class UploadMediaErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    UNSUPPORTED_MEDIA_TYPE = code(ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    MEDIA_TOO_LARGE = code(ErrorCode.MEDIA_TOO_LARGE)
    UPLOAD_NOT_PENDING = code(ErrorCode.UPLOAD_NOT_PENDING)
    UNAVAILABLE = code(ErrorCode.UNAVAILABLE)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    TEXT_TOO_LONG = code(ErrorCode.TEXT_TOO_LONG)


@strawberry.type(description="uploadMedia failed; nothing was stored.")
class UploadMediaError(MutationError):
    code: UploadMediaErrorCode = strawberry.field(description="What went wrong.")


UploadMediaResult = Annotated[UploadMediaSuccess | UploadMediaError, result_union("uploadMedia")]
UPLOAD_MEDIA = ResultTypes(UploadMediaSuccess, UploadMediaError, UploadMediaErrorCode)


@strawberry.type(description="The medium's settings changed.")
class UpdateMediaSuccess(MediaPayload):
    pass


@error_codes("updateMedia")
class UpdateMediaErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    TEXT_TOO_LONG = code(ErrorCode.TEXT_TOO_LONG)


@strawberry.type(description="updateMedia failed; nothing changed.")
class UpdateMediaError(MutationError):
    code: UpdateMediaErrorCode = strawberry.field(description="What went wrong.")


UpdateMediaResult = Annotated[UpdateMediaSuccess | UpdateMediaError, result_union("updateMedia")]
UPDATE_MEDIA = ResultTypes(UpdateMediaSuccess, UpdateMediaError, UpdateMediaErrorCode)


def media_id(value: str, field: str) -> int:
    return decode_id(value, "Media", field)


def _focus(value: FocusInput | None) -> Focus | None:
    return value.to_focus() if value is not None else None


def _direct(upload: PresignedUpload | None) -> DirectUpload | None:
    if upload is None:
        return None
    return DirectUpload(
        url=upload.url,
        method=upload.method,
        expires_at=upload.expires_at,
        headers=[FormField(name=k, value=v) for k, v in upload.headers.items()],
        fields=[FormField(name=k, value=v) for k, v in upload.fields.items()],
    )


async def _file_chunks(file: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await file.read(UPLOAD_CHUNK):
        yield chunk


@strawberry.type
class MediaQuery:
    @strawberry.field(
        description="One of the viewer's media (to follow its processing), or null when it "
        "is not the viewer's or the viewer is signed out."
    )
    async def media(
        self,
        info: Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="The medium.")],
    ) -> Media | None:
        viewer = info.context.viewer
        parsed = parse_global_id(id)
        if viewer is None or parsed is None or parsed.type_name != "Media":
            return None
        node_id = parse_id(parsed.node_id)
        view = await info.context.services.media.own_media(viewer, node_id) if node_id else None
        return as_media(view) if view else None


@strawberry.type
class MediaMutation:
    @strawberry.mutation(
        description="Start an upload: a pending medium and, where storage takes them, a URL "
        "to send the file to directly (then finalizeUpload)."
    )
    async def create_upload(
        self, info: Info[Context, None], input: Annotated[CreateUploadInput, INPUT]
    ) -> CreateUploadResult:
        async def action() -> CreateUploadSuccess:
            viewer = info.context.require_viewer()
            view, upload = await info.context.services.media.create_upload(
                viewer,
                purpose=MediaPurposeModel(input.purpose.name.lower()),
                content_type=input.content_type,
                byte_size=input.byte_size,
                alt_text=input.alt_text,
                focus=_focus(input.focus),
            )
            return CreateUploadSuccess(media=as_media(view), upload=_direct(upload))

        return await CREATE_UPLOAD.run(action)

    @strawberry.mutation(description="The file of a createUpload was sent: process it.")
    async def finalize_upload(
        self, info: Info[Context, None], input: Annotated[FinalizeUploadInput, INPUT]
    ) -> FinalizeUploadResult:
        async def action() -> FinalizeUploadSuccess:
            viewer = info.context.require_viewer()
            view = await info.context.services.media.finalize_upload(
                viewer, media_id(input.id, "id")
            )
            return FinalizeUploadSuccess(media=as_media(view))

        return await FINALIZE_UPLOAD.run(action)

    @strawberry.mutation(
        description="Upload a file through the application (a GraphQL multipart request with "
        "an Apollo-Require-Preflight header) and process it."
    )
    async def upload_media(
        self, info: Info[Context, None], input: Annotated[UploadMediaInput, INPUT]
    ) -> UploadMediaResult:
        async def action() -> UploadMediaSuccess:
            viewer = info.context.require_viewer()
            # A multipart request's file part; anything else (a string in the variables)
            # is no file.
            file: object = input.file
            if not isinstance(file, UploadFile):
                raise DomainError(
                    ErrorCode.INVALID_INPUT,
                    "Send the file as a part of a multipart request.",
                    "file",
                )
            view = await info.context.services.media.upload(
                viewer,
                chunks=_file_chunks(file),
                content_type=file.content_type or "application/octet-stream",
                size=file.size,
                purpose=MediaPurposeModel(input.purpose.name.lower()),
                media_id=media_id(input.id, "id") if input.id is not None else None,
                alt_text=input.alt_text,
                focus=_focus(input.focus),
            )
            return UploadMediaSuccess(media=as_media(view))

        return await UPLOAD_MEDIA.run(action)

    @strawberry.mutation(description="Change the alt text or focus point of a medium.")
    async def update_media(
        self, info: Info[Context, None], input: Annotated[UpdateMediaInput, INPUT]
    ) -> UpdateMediaResult:
        async def action() -> UpdateMediaSuccess:
            viewer = info.context.require_viewer()
            view = await info.context.services.media.update_media(
                viewer,
                media_id(input.id, "id"),
                alt_text=input.alt_text,
                focus=_focus(input.focus),
            )
            return UpdateMediaSuccess(media=as_media(view))

        return await UPDATE_MEDIA.run(action)
