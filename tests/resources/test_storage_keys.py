"""The storage key layout: single-aspect SKUs keep the keys they always had; extra aspects get their own."""

from resources import storage_keys as keys


def test_single_aspect_keys_are_unchanged():
    rendition = keys.rendition("SKU-1", "abc123")
    assert rendition == "skus/SKU-1/abc123"
    assert keys.stage_pointer(rendition, "clip") == "skus/SKU-1/abc123/clip.json"
    assert keys.render_attempt(rendition, "clip", "motion", 2) == "skus/SKU-1/abc123/clip/motion-s2"
    assert keys.published_video("SKU-1", "abc123") == "published/SKU-1/abc123.mp4"
    assert keys.published_poster("SKU-1", "abc123") == "published/SKU-1/abc123.jpg"
    assert keys.manifest("SKU-1") == "published/manifest/SKU-1.parquet"


def test_each_aspect_of_a_multi_aspect_sku_has_its_own_keys():
    folders = {keys.rendition("SKU-1", "abc", aspect) for aspect in ("16:9", "9:16", "1:1")}
    assert folders == {"skus/SKU-1/abc/16x9", "skus/SKU-1/abc/9x16", "skus/SKU-1/abc/1x1"}
    videos = {keys.published_video("SKU-1", "abc", aspect) for aspect in ("16:9", "9:16", "1:1")}
    assert videos == {"published/SKU-1/abc-16x9.mp4", "published/SKU-1/abc-9x16.mp4", "published/SKU-1/abc-1x1.mp4"}


def test_published_video_keys_parse_back_to_sku_and_hash():
    assert keys.parse_published_video(keys.published_video("A-1", "f00d")) == ("A-1", "f00d")
    assert keys.parse_published_video(keys.published_video("A-1", "f00d", "9:16")) == ("A-1", "f00d")
    assert keys.parse_published_video(keys.published_poster("A-1", "f00d")) is None
    assert keys.parse_published_video(keys.manifest("A-1")) is None
    assert keys.parse_published_video(keys.GALLERY) is None
    assert keys.relative_to_published(keys.published_video("A-1", "f00d")) == "A-1/f00d.mp4"


def test_campaign_and_training_keys():
    assert keys.campaign_clip("spring", "h1", "9:16", "r-7") == "campaigns/spring/h1/9x16/r-7.mp4"
    prefix = keys.campaign("spring", "h1")
    assert keys.campaign_manifest(prefix) == "campaigns/spring/h1/manifest.parquet"
    assert keys.training_module("care", "k1") == "training/care/k1"
    assert keys.training_scene("s1") == "training/scenes/s1"
    assert keys.training_presenter_clip("heygen", "j1") == "training/presenters/heygen/j1.mp4"
    assert keys.source_image("ab" * 32, "png") == f"sources/ab/{'ab' * 32}.png"
