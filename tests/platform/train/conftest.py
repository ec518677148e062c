import pytest

from helpers.shards import write_synth_set


@pytest.fixture(scope="session")
def synth_shards(tmp_path_factory):
    """Small real synthetic shard sets (train / eval / zeroshot) shared by the training tests."""
    return write_synth_set(tmp_path_factory.mktemp("synth"), 4096, seed=0, held_out=256)
