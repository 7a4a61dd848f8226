"""Response bodies of GET /v1/search and GET /v1/media (they generate the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class SearchItem(BaseModel):
    id: str
    url: str
    title: str | None = None
    channel: str | None = None
    duration_s: float | None = None
    view_count: int | None = None
    upload_date: str | None = Field(None, description="YYYY-MM-DD; approximate for search results "
                                                      "(the site says e.g. \"3 days ago\")")
    thumbnail: str | None = None


class SearchResponse(BaseModel):
    query: str
    kind: Literal["video", "short"]
    limit: int
    items: list[SearchItem]
    cached: bool = Field(description="served from the brief search cache")
    fetched_at: str


class Thumbnail(BaseModel):
    url: str
    width: int | None = None
    height: int | None = None


class CaptionLanguage(BaseModel):
    language: str
    name: str | None = None
    formats: list[str] = Field(default_factory=list)


class SiteCaptions(BaseModel):
    manual: list[CaptionLanguage] = Field(default_factory=list, description="made by people")
    automatic: list[CaptionLanguage] = Field(
        default_factory=list, description="the site's speech recognition of the spoken language")
    automatic_translations: int = Field(0, description="machine translations of the automatic captions")


class Problem(BaseModel):
    code: str
    message: str


class Estimate(BaseModel):
    model: str
    shards: int
    processing_s: float = Field(description="wall time from submission to captions, roughly")
    gpu_seconds: float
    cost_usd: float = Field(description="GPU time at the configured price (Lambda and S3 costs are cents)")
    basis: str


class MediaInfoResponse(BaseModel):
    url: str
    accepted: bool = Field(description="whether POST /v1/transcriptions would take it with these settings")
    problems: list[Problem] = Field(default_factory=list)
    id: str | None = None
    title: str | None = None
    duration_s: float | None = None
    channel: str | None = None
    uploader: str | None = None
    upload_date: str | None = None
    view_count: int | None = None
    is_live: bool | None = None
    extractor: str | None = None
    webpage_url: str | None = None
    thumbnails: list[Thumbnail] = Field(default_factory=list)
    captions: SiteCaptions = Field(default_factory=SiteCaptions)
    estimate: Estimate | None = None
