"""A trained cell back as a model you can use: `vlscale.load_model` and `vlscale export-model`.

    model, preprocess, tokenizer = vlscale.load_model(None, "3f9c2a71b0de")  # cell hash or run id
    image = preprocess(PIL.Image.open("cat.png"))[None]           # float32 [1, 3, S, S]
    texts = tokenizer(["a photo of a cat", "a photo of a dog"])   # int64 [2, context_length]
    image_features = model.encode_image(image, normalize=True)

The cell is rebuilt from its run (`TAG_CELL_SPEC`), its model built by the platform's own
builders (`create_task`: the same config adjustments as in training, e.g. CLIP's text pooling at
the word tokenizer's end token) and the final checkpoint (`TAG_CHECKPOINT`: a `checkpoint/`
artifact of the run, or a location on shared storage) loaded into it. The checkpoint holds the
training task's weights (`model.`-prefixed keys, which is why open_clip's loader refuses it);
`export_open_clip` writes a CLIP's weights in open_clip's own checkpoint format instead.

The preprocess and the tokenizer are the training ones (`preprocess_for` on the cell's training
shards): the same resize, crop and normalisation as training and evaluation, and the only
tokenizer whose ids the model knows. A word-vocabulary tokenizer (the CPU ladder) takes its
vocabulary from the training shards' dataset.json, so those shards must be readable.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import nn

from vlscale import tracking
from vlscale.errors import UserError
from vlscale.outputs import check_output_file, staged_file
from vlscale.platform.config import Cell, cell_from_dict

if TYPE_CHECKING:
    from PIL import Image

    from vlscale.platform.data import Preprocess
    from vlscale.platform.models.tokenizers import Tokenizer

CELL_HASH_PATTERN = re.compile(r"[0-9a-f]{12}")
"""A cell hash (`Cell.cell_hash`): 12 lower-case hex digits. Anything else is taken as a run id."""
OPEN_CLIP_FAMILIES = ("clip",)
"""Model types whose model is open_clip's own class, so that open_clip's loader accepts them."""


class ImagePreprocess:
    """PIL image -> float32 [3, S, S]: shortest-edge bicubic resize, center crop, RGB, ToTensor,
    Normalize, with the arithmetic of vlscale's data pipeline (`decode_image` +
    `to_model_images`), so an image gives the tensor training and evaluation gave it."""

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.image_size, self.mean, self.std = image_size, tuple(mean), tuple(std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        from vlscale.platform.data.preprocess import resize_center_crop, to_model_images

        image = resize_center_crop(image, self.image_size)
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        return to_model_images(pixels[None], self.mean, self.std)[0]

    def __repr__(self) -> str:
        return f"ImagePreprocess(image_size={self.image_size}, mean={self.mean}, std={self.std})"


class TextTokenizer:
    """str or list of str -> int64 [n, context_length]: the cell's training tokenizer."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.context_length = tokenizer.context_length
        self.vocab_size = tokenizer.vocab_size

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.tokenizer([texts] if isinstance(texts, str)
                                                          else list(texts)), dtype=np.int64))

    def __repr__(self) -> str:
        return (f"TextTokenizer({self.tokenizer.kind}, context_length={self.context_length}, "
                f"vocab_size={self.vocab_size})")


class LoadedModel(NamedTuple):
    """What `load_model` returns; unpacks as `model, preprocess, tokenizer`."""

    model: nn.Module
    """The open_clip-style model (`encode_image`, `encode_text`, forward), in eval mode."""
    preprocess: ImagePreprocess
    tokenizer: TextTokenizer


def find_trained_run(tracking_uri: str | None, run: str) -> tracking.CellRunRecord:
    """The cell run named by `run`: an MLflow run id, or a cell hash held by exactly one run.

    A cell hash that several sweeps hold is ambiguous (each sweep trained its own copy): that
    is refused with the run ids to choose from, rather than picking one silently."""
    from vlscale.tracking.store import connect, experiment_ids, quote, search_all_runs

    client, uri = connect(tracking_uri)
    by_hash = CELL_HASH_PATTERN.fullmatch(run) is not None
    field = f"tags.`{tracking.TAG_CELL_HASH}`" if by_hash else "attributes.run_id"
    query = f"tags.`{tracking.TAG_KIND}` = '{tracking.KIND_CELL}' AND {field} = {quote(run)}"
    records = [tracking.record_from_run(found)
               for found in search_all_runs(client, experiment_ids(client), query)]
    if not records:
        what = "cell hash" if by_hash else "run id"
        raise UserError(f"no cell run with {what} {run!r} in {uri}; give the MLflow run id or "
                        "the 12-character cell hash of a trained cell (the MLflow UI and the "
                        "sweep report list them)")
    if len(records) > 1:
        choices = ", ".join(f"{r.run_id} (sweep {r.sweep_id or 'none'})" for r in records)
        raise UserError(f"cell {run} was trained in {len(records)} runs ({choices}); give the "
                        "run id of the one to load")
    return records[0]


def cell_of(record: tracking.CellRunRecord) -> Cell:
    """The cell a run trained, rebuilt from its `TAG_CELL_SPEC`."""
    spec = record.cell_spec()
    if spec is None:
        raise UserError(f"run {record.run_id} has no {tracking.TAG_CELL_SPEC} tag: it was not "
                        "made by vlscale, and its model cannot be rebuilt")
    return cell_from_dict(spec)


def _checkpoint_weights(tracking_uri: str | None, record: tracking.CellRunRecord,
                        directory: Path) -> Path:
    """The final checkpoint's model file of the run, downloaded into `directory` if it is a run
    artifact. UserError when the run has none or the file is gone."""
    from vlscale.platform.train.checkpointing import MODEL_FILE
    from vlscale.tracking.store import connect

    pointer = record.tags.get(tracking.TAG_CHECKPOINT)
    if not pointer:
        from vlscale.platform.train.progress import UPLOAD_CHECKPOINT_MAX_PARAMS_M

        state = record.state()
        if state in (tracking.CellState.RUNNING, tracking.CellState.STALE):
            why = ("it is still running; wait until it finishes" if state.value == "running"
                   else "it is stale (its trainer stopped reporting); rerun its sweep or "
                        "`vlscale train` to resume it")
        elif state == tracking.CellState.FINISHED:
            why = (f"it finished without uploading one (only models of up to "
                   f"{UPLOAD_CHECKPOINT_MAX_PARAMS_M:g}M parameters upload theirs)")
        else:
            why = f"it is {state.value} and never saved its final checkpoint; train it again"
        raise UserError(f"run {record.run_id} (cell {record.cell_hash}) has no final "
                        f"checkpoint: {why}")
    artifact = f"runs:/{record.run_id}/{tracking.ARTIFACT_CHECKPOINT_DIR}"
    if pointer == artifact:
        client, _ = connect(tracking_uri)
        stored = {Path(f.path).name for f in
                  client.list_artifacts(record.run_id, tracking.ARTIFACT_CHECKPOINT_DIR)}
        if MODEL_FILE not in stored:
            raise UserError(f"run {record.run_id}'s checkpoint artifact has no {MODEL_FILE} "
                            "(the upload was cut short or the file was deleted); train the "
                            "cell again")
        return Path(client.download_artifacts(
            record.run_id, f"{tracking.ARTIFACT_CHECKPOINT_DIR}/{MODEL_FILE}", str(directory)))
    weights = Path(pointer) / MODEL_FILE
    if not weights.is_file():
        raise UserError(f"run {record.run_id}'s final checkpoint {weights} does not exist (its "
                        "upload failed and the copy it points to is gone, or the storage is not "
                        "mounted here); mount that storage or train the cell again")
    return weights


def training_preprocess(cell: Cell) -> Preprocess:
    """The cell's training preprocessing (`preprocess_for` on its training shards): the word
    tokenizer's vocabulary lives in their dataset.json."""
    from vlscale.platform.data import open_shards
    from vlscale.platform.models.profiles import model_profile
    from vlscale.platform.train.evaluate import preprocess_for

    profile = model_profile(cell.model.model_type, cell.model.arch)
    if profile.tokenizer != "words":
        from vlscale.platform.data import Preprocess

        return Preprocess(profile.image_size, profile.tokenizer, profile.context_length, None,
                          profile.mean, profile.std)
    try:
        shards = open_shards(cell.data.train)
    except UserError as error:
        raise UserError(f"the cell's word tokenizer reads its vocabulary from the training "
                        f"shards, which cannot be opened: {error}") from error
    return preprocess_for(shards, profile)


def load_model(tracking_uri: str | None, run: str, *, device: str = "cpu") -> LoadedModel:
    """The trained model of a cell, with its image preprocessing and tokenizer.

    `run`: an MLflow run id, or the cell's hash (refused when several sweeps trained it: give
    the run id then). `tracking_uri`: None for `$MLFLOW_TRACKING_URI` or the embedded store.
    The model is built exactly as training built it, loaded with the final checkpoint's
    weights, on `device`, in eval mode. UserError (one line) for an unknown run or cell, a run
    without a final checkpoint (still running, or failed before one) or a missing checkpoint
    file.
    """
    record = find_trained_run(tracking_uri, run)
    return _load(tracking_uri, record, cell_of(record), device)


def _load(tracking_uri: str | None, record: tracking.CellRunRecord, cell: Cell,
          device: str) -> LoadedModel:
    """`load_model` for a run already found and its cell already rebuilt."""
    from safetensors.torch import load_file

    from vlscale.platform.models.task import create_task

    preprocess = training_preprocess(cell)
    with tempfile.TemporaryDirectory(prefix="vlscale-load-") as directory:
        weights = load_file(_checkpoint_weights(tracking_uri, record, Path(directory)))
    task = create_task(cell.model, device="cpu", logit_scale_clamp=cell.train.logit_scale_clamp)
    task.load_state_dict(weights)  # strict: every weight of the model, nothing else
    model = task.model.to(device).eval()
    tokenizer = preprocess.build_tokenizer()
    task.check_tokenizer(tokenizer)
    return LoadedModel(model, ImagePreprocess(preprocess.image_size, preprocess.mean,
                                              preprocess.std), TextTokenizer(tokenizer))


def export_open_clip(tracking_uri: str | None, run: str, out: str | Path) -> Path:
    """Write a trained CLIP cell's weights as an open_clip checkpoint at `out`.

    The file is what open_clip_train writes (`{"name", "state_dict"}`, plus "model_cfg", the
    open_clip config the model was built from, vlscale's adjustments included), so
    `open_clip.load_checkpoint(open_clip.CLIP(**model_cfg), out)` and
    `open_clip.create_model(name, pretrained=out)` accept it. Written beside `out` and renamed
    onto it, so `out` is never half a file. MaMMUT is refused: upstream open_clip has no MaMMUT
    model to load it into (vlscale's MaMMUT follows the paper's fork, which is not installed).
    """
    from vlscale.platform.models.ladder import config_name, model_config

    out = check_output_file(out, "--out")
    record = find_trained_run(tracking_uri, run)
    cell = cell_of(record)
    if cell.model.model_type not in OPEN_CLIP_FAMILIES:
        raise UserError(f"cell {record.cell_hash} is a {cell.model.model_type} model, which "
                        "open_clip cannot load (upstream open_clip has no MaMMUT); load it with "
                        "vlscale.load_model instead")
    model = _load(tracking_uri, record, cell, "cpu").model
    config: dict[str, Any] = json.loads(json.dumps(model_config(cell.model.model_type,
                                                                cell.model.arch)))
    checkpoint = {"name": config_name(cell.model.model_type, cell.model.arch),
                  "state_dict": model.state_dict(), "model_cfg": config,
                  "vlscale_run_id": record.run_id, "vlscale_cell_hash": record.cell_hash}
    with staged_file(out) as staged:
        torch.save(checkpoint, staged)
    return out
