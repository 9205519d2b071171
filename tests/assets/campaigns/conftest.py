import pytest

from tests.assets.campaigns.small_campaign import write_small_campaign


@pytest.fixture(scope="session")
def small_campaign(tmp_path_factory):
    """Path of the small campaign's spec (template, logos and recipients beside it)."""
    return write_small_campaign(tmp_path_factory.mktemp("small-campaign"))
