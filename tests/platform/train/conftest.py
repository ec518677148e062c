import pytest


@pytest.fixture(scope="session")
def synth_shards(tmp_path_factory):
    """Small real synthetic shard sets (train / eval / zeroshot) shared by the training tests."""
    from vlscale.platform.data.synth import write_synth

    out = tmp_path_factory.mktemp("synth")
    write_synth(out, samples=4096, image_size=32, seed=0, eval_samples=256,
                zeroshot_samples=256, workers=1)
    return out
