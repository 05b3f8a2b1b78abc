"""The media repository: upload, download, thumbnails, config and URL previews.

Spec: client-server API "Content repository" (content-repo.yaml, authed-content-repo.yaml).
Bytes live in the MEDIA bucket (``env.MEDIA``, R2-shaped), metadata in D1 (``d1.media``).

- ``upload``: ``POST /_matrix/media/v3/upload``, ``POST /_matrix/media/v1/create`` and
  ``PUT /_matrix/media/v3/upload/{serverName}/{mediaId}``;
- ``download``: ``GET /_matrix/client/v1/media/download/...`` (authenticated) and the
  deprecated ``/_matrix/media/v3/download/...`` (unauthenticated; off when
  ``enable_legacy_media`` is false);
- ``thumbnail``: the same pair for thumbnails, made by ``thumbnailer`` (Pillow);
- ``config`` and ``preview``: ``/media/config`` and ``/media/preview_url``.

- ``federation``: ``/_matrix/federation/v1/media/download|thumbnail/{mediaId}``, our media
  for other servers (X-Matrix signed, ``multipart/mixed`` answers built by ``multipart``);
- ``remote``: another server's media, fetched over federation for an authenticated local
  user, cached in the bucket and D1, then served from there.
"""
