"""Task 2 (audio features): tiny real-class models saved to disk, run through the task's code path.

Nothing here downloads: every test runs with the hub offline and an empty Hugging Face home.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from talkprep.audio_math import (
    CHUNK_SAMPLES,
    MEL_BINS,
    MEL_FLOOR,
    STEP_SAMPLES,
    chunk_plan,
    deepspeech_steps,
    deepspeech_window_count,
    encoder_steps,
    fit_steps_edge,
    hz_to_mel,
    log_mel,
    mel_to_hz,
    pair_steps,
    rad_nerf_window_count,
    run_chunked,
    window_steps,
)
from talkprep.check import check_folder
from talkprep.config import Config
from talkprep.errors import MissingWeightsError, TaskError
from talkprep.io.audio import read_wav, write_wav
from talkprep.manifest import manifest_path
from talkprep.tasks.audio import WAV_NAME
from talkprep.tasks.audio_features import AudioFeaturesTask
from talkprep.tasks.base import FolderFacts, TaskContext

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

RATE = 16000
TINY_HIDDEN = 32
TINY_VOCAB = 12


def _tiny_front_end() -> dict:
    """hubert-large's front end (layer norm, conv bias: local in time), much narrower."""
    return {
        "hidden_size": TINY_HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": (16,) * 7,
        "conv_bias": True,
        "feat_extract_norm": "layer",
        "do_stable_layer_norm": True,
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
    }


def _save(model: object, folder: Path) -> Path:
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Hub offline, empty HF home: a test that tried to download would fail, not hang."""
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    return home / "hub"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny HuBERT, a 12-class wav2vec2 CTC and a 29-class CTC, saved as real model folders."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    hubert = transformers.HubertModel(transformers.HubertConfig(**_tiny_front_end()))
    ctc = transformers.Wav2Vec2ForCTC(
        transformers.Wav2Vec2Config(vocab_size=TINY_VOCAB, **_tiny_front_end())
    )
    deepspeech = transformers.Wav2Vec2ForCTC(
        transformers.Wav2Vec2Config(vocab_size=29, **_tiny_front_end())
    )
    return {
        "hubert": _save(hubert, root / "hubert"),
        "wav2vec2": _save(ctc, root / "wav2vec2"),
        "deepspeech": _save(deepspeech, root / "deepspeech"),
    }


def _speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts and tones: enough structure for the models to give varied outputs."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * RATE))) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
    x = 0.2 * envelope * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def _context(out: Path, seconds: float, **options: object) -> TaskContext:
    config = Config(video=out / "unused.mp4", out=out, device="cpu", **options)
    return TaskContext(
        out=out,
        config=config,
        input={"duration_s": seconds},
        records={"audio": {}},
        progress=lambda items, **_: iter(items),
    )


# --- pure functions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_samples", [0, 399, 400, 16000, 319_999, 320_000, 320_079, 320_080, 320_399, 320_400, 960_500]
)
def test_chunk_plan_covers_every_step_once(n_samples: int) -> None:
    chunks = chunk_plan(n_samples)
    produced = 0
    for chunk in chunks:
        assert chunk.first_step == produced
        assert chunk.stop - chunk.start >= 400
        steps = (chunk.stop - chunk.start - 400) // STEP_SAMPLES + 1
        if chunk.stop - chunk.start == CHUNK_SAMPLES + 80:
            assert steps == CHUNK_SAMPLES // STEP_SAMPLES
        produced += steps
    # Only a dropped tail shorter than the receptive field can leave one step to zero-fill.
    assert encoder_steps(n_samples) - produced in (0, 1)
    assert encoder_steps(n_samples) == max(0, (n_samples - 80) // 320)


def test_pair_steps_drops_odd_last_step() -> None:
    steps = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    pairs = pair_steps(steps)
    assert pairs.shape == (3, 2, 3) and pairs.dtype == np.float32
    np.testing.assert_array_equal(pairs[1], steps[2:4])


@pytest.mark.parametrize("n_steps", [1, 2, 7, 50, 99])
def test_windows_match_rad_nerf_unfold(n_steps: int) -> None:
    """RAD-NeRF's nerf/asr.py: F.unfold(kernel (16, 1), padding (8, 0), stride (2, 1))."""
    feats = torch.randn(n_steps, 5)
    c = feats.shape[1]
    unfolded = torch.nn.functional.unfold(
        feats.permute(1, 0).reshape(1, c, -1, 1), kernel_size=(16, 1), padding=(8, 0), stride=(2, 1)
    )
    reference = unfolded.view(c, 16, -1).permute(2, 1, 0).numpy()
    ours = window_steps(feats.numpy(), rad_nerf_window_count(n_steps))
    np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("n_samples", [16000, 16080, 16250, 128_000, 128_170])
def test_deepspeech_windows_match_reference_script(n_samples: int) -> None:
    """ER-NeRF's deepspeech_features.py: np.interp to round(L / 320) rows, pad 8, range(0, M, 2)."""
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((encoder_steps(n_samples), 29)).astype(np.float32)
    rows = deepspeech_steps(n_samples)
    t_in = np.arange(len(logits)) / 50.0
    t_out = np.arange(rows) / 50.0
    interp = np.stack([np.interp(t_out, t_in, logits[:, k]) for k in range(29)], axis=1)
    padded = np.concatenate([np.zeros((8, 29)), interp, np.zeros((8, 29))])
    reference = np.array([padded[i : i + 16] for i in range(0, len(padded) - 16, 2)])
    fitted = fit_steps_edge(logits, rows)
    ours = window_steps(fitted, deepspeech_window_count(len(fitted)))
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def _reference_log_mel(x: np.ndarray) -> np.ndarray:
    """Direct per-row computation: explicit windows, explicit triangles, no shared helpers."""
    n_fft, hop, n_mels = 640, 320, 80
    freqs = np.arange(n_fft // 2 + 1) * RATE / n_fft
    mel_points = np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), n_mels + 2)
    hz_points = mel_to_hz(mel_points)
    bank = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, mid, hi = hz_points[m], hz_points[m + 1], hz_points[m + 2]
        for k, f in enumerate(freqs):
            if lo < f <= mid:
                bank[m, k] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                bank[m, k] = (hi - f) / (hi - mid)
        bank[m] *= 2.0 / (hi - lo)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    rows = []
    for t in range(len(x) // hop):
        start = t * hop + hop // 2 - n_fft // 2
        frame = np.zeros(n_fft)
        lo, hi = max(0, start), min(len(x), start + n_fft)
        frame[lo - start : hi - start] = x[lo:hi]
        power = np.abs(np.fft.rfft(frame * window)) ** 2
        rows.append(np.log(np.maximum(bank @ power, MEL_FLOOR)))
    return np.array(rows)


def test_mel_tone_lands_in_its_bin_at_its_time() -> None:
    tone_hz, on_s, off_s = 1000.0, 0.4, 0.8
    t = np.arange(int(1.2 * RATE)) / RATE
    x = np.where((t >= on_s) & (t < off_s), 0.5 * np.sin(2 * np.pi * tone_hz * t), 0.0)
    mel = log_mel(x.astype(np.float32))
    assert mel.shape == (len(x) // 320, MEL_BINS) and mel.dtype == np.float32
    np.testing.assert_allclose(mel, _reference_log_mel(x), atol=2e-3)

    centres = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), MEL_BINS + 2))[1:-1]
    expected_bin = int(np.argmin(np.abs(centres - tone_hz)))
    row_centre_s = (np.arange(len(mel)) * 320 + 160) / RATE
    inside = (row_centre_s > on_s + 0.02) & (row_centre_s < off_s - 0.02)
    assert np.all(mel[inside].argmax(axis=1) == expected_bin)
    # Row t sees samples [320t - 160, 320t + 480): the first row touching the onset is row 19.
    onset_row = int(np.ceil((on_s * RATE - 480 + 1) / 320))
    assert onset_row == 19
    assert np.all(mel[:onset_row] == np.float32(np.log(MEL_FLOOR)))
    assert mel[onset_row].max() > np.log(MEL_FLOOR) + 10


# --- encoders -----------------------------------------------------------------------------------


def _er_nerf_reference(model: object, input_values: torch.Tensor) -> np.ndarray:
    """A transcription of ER-NeRF's data_utils/hubert.py loop (cat, then pad or trim to T)."""
    kernel, stride = 400, 320
    clip_length = stride * 1000
    num_iter = input_values.shape[1] // clip_length
    expected_t = (input_values.shape[1] - (kernel - stride)) // stride
    res = []
    with torch.no_grad():
        for i in range(num_iter):
            start = 0 if i == 0 else clip_length * i
            end = start + (clip_length - stride + kernel)
            res.append(model(input_values[:, start:end]).last_hidden_state[0])
        rest = input_values[:, clip_length * num_iter :] if num_iter > 0 else input_values
        if rest.shape[1] >= kernel:
            res.append(model(rest).last_hidden_state[0])
    ret = torch.cat(res, dim=0)
    if ret.shape[0] < expected_t:
        ret = torch.nn.functional.pad(ret, (0, 0, 0, expected_t - ret.shape[0]))
    return ret[:expected_t].numpy()


def test_hubert_matches_er_nerf_procedure(models: dict[str, Path]) -> None:
    from talkprep.models.audio_encoders import SpeechEncoder, resolve_model

    samples = _speech_like(30.0)  # one full 320,000-sample chunk and a 160,000-sample rest
    with SpeechEncoder.load(
        resolve_model(str(models["hubert"]), "--hubert-model"), "hidden"
    ) as enc:
        ours = enc.encode(samples)
        linears = [type(m).__name__ for m in enc.model.modules() if "Linear" in type(m).__name__]
        extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(models["hubert"])
        values = extractor(samples, sampling_rate=RATE, return_tensors="pt").input_values
    plain = transformers.HubertModel.from_pretrained(models["hubert"]).eval()
    reference = _er_nerf_reference(plain, values)
    assert ours.shape == reference.shape == ((len(samples) - 80) // 320, TINY_HIDDEN)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    if torch.backends.mkldnn.is_available():  # the CPU path runs its Linear layers on oneDNN
        assert linears and set(linears) == {"OneDnnLinear"}


@pytest.mark.parametrize("do_normalize", [True, False])
def test_chunkwise_normalisation_is_the_extractors(
    models: dict[str, Path], do_normalize: bool
) -> None:
    """The whole-clip normalisation applied chunk by chunk gives the extractor's own values."""
    from talkprep.models.audio_encoders import SpeechEncoder, resolve_model

    samples = _speech_like(7.3, seed=5) * 0.3 + 0.01
    with SpeechEncoder.load(
        resolve_model(str(models["hubert"]), "--hubert-model"), "hidden"
    ) as enc:
        enc.extractor.do_normalize = do_normalize
        whole = enc.extractor(samples, sampling_rate=RATE, return_tensors="np").input_values[0]
        normalise = enc.normaliser(samples)
        pieces = [normalise(samples[a : a + 50_000]) for a in range(0, len(samples), 50_000)]
    assert all(piece.dtype == np.float32 for piece in pieces)
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_onednn_linears_give_the_float32_results() -> None:
    from talkprep.models.onednn import OneDnnLinear, onednn_linears

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 32, bias=False)
    ).eval()
    x = torch.randn(2, 50, 64)
    with torch.inference_mode():
        expected = model(x)
    assert onednn_linears(model) == 2
    assert isinstance(model[0], OneDnnLinear) and isinstance(model[2], OneDnnLinear)
    with torch.inference_mode():
        got = model(x.transpose(0, 1).contiguous().transpose(0, 1))  # strided input too
    assert got.dtype == torch.float32 and got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_chunked_front_end_equals_single_pass(models: dict[str, Path]) -> None:
    """The conv front end is local in time, so chunks with the 80-sample overlap lose nothing."""
    hubert = transformers.HubertModel.from_pretrained(models["hubert"]).eval()

    def front_end(values: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = hubert.feature_extractor(torch.from_numpy(values)[None])
        return out[0].transpose(0, 1).numpy()

    values = _speech_like(3.3, seed=2)
    single = front_end(values)
    chunked = run_chunked(front_end, values, single.shape[1], chunk_samples=320 * 37)
    assert len(chunk_plan(len(values), 320 * 37)) > 4
    assert chunked.shape == (encoder_steps(len(values)), 16)
    np.testing.assert_allclose(chunked, single[: len(chunked)], atol=1e-4, rtol=1e-4)


def test_segmented_front_end_gives_the_same_features() -> None:
    """HuBERT-large's layer-norm front end made 5 s at a time: the same steps as one pass."""
    from talkprep.models.front_end import SegmentedFrontEnd, segment_front_end

    torch.manual_seed(3)
    config = transformers.HubertConfig(**_tiny_front_end())
    plain = transformers.HubertModel(config).eval()
    segmented = transformers.HubertModel(config).eval()
    segmented.load_state_dict(plain.state_dict())
    assert segment_front_end(segmented)
    assert isinstance(segmented.feature_extractor, SegmentedFrontEnd)
    values = torch.from_numpy(_speech_like(20.0, seed=4))[None]  # one 1,000-step chunk
    with torch.inference_mode():
        whole = plain.feature_extractor(values)
        pieces = segmented.feature_extractor(values)
        assert pieces.shape == whole.shape == (1, 16, 999)
        np.testing.assert_allclose(pieces.numpy(), whole.numpy(), atol=1e-6)
        states = segmented(values).last_hidden_state
        np.testing.assert_allclose(states, plain(values).last_hidden_state, atol=1e-5)

    group_norm = transformers.HubertModel(
        transformers.HubertConfig(**{**_tiny_front_end(), "feat_extract_norm": "group"})
    )
    assert not segment_front_end(group_norm)


@pytest.mark.parametrize("seconds", [1.0, 8.0, 30.0])
def test_task_shapes_and_frame_alignment(
    models: dict[str, Path], tmp_path: Path, seconds: float
) -> None:
    samples = _speech_like(seconds, seed=int(seconds))
    write_wav(tmp_path / WAV_NAME, samples)
    n_frames = int(round(seconds * 25))
    ctx = _context(
        tmp_path,
        seconds,
        audio_features=("hubert", "mel", "wav2vec2", "deepspeech"),
        hubert_model=str(models["hubert"]),
        wav2vec2_model=str(models["wav2vec2"]),
        deepspeech_model=models["deepspeech"],
    )
    task = AudioFeaturesTask()
    assert task.outputs(ctx.config) == ("aud_hu.npy", "aud_mel.npy", "aud_eo.npy", "aud_ds.npy")
    result = task.run(ctx)

    hu = np.load(tmp_path / "aud_hu.npy")
    mel = np.load(tmp_path / "aud_mel.npy")
    eo = np.load(tmp_path / "aud_eo.npy")
    ds = np.load(tmp_path / "aud_ds.npy")
    # Exact 25 fps audio: T = 2N - 1 HuBERT steps, so N - 1 pairs (as ER-NeRF); windows give N.
    assert hu.shape == (n_frames - 1, 2, TINY_HIDDEN)
    assert mel.shape == (2 * n_frames, MEL_BINS)
    assert eo.shape == (n_frames, 16, TINY_VOCAB)
    assert ds.shape == (n_frames, 16, 29)
    assert {a.dtype for a in (hu, mel, eo, ds)} == {np.dtype(np.float32)}
    assert result.frames == n_frames and not result.warnings
    info = result.info["features"]
    assert info["hubert"]["frames_covered"] == n_frames - 1
    assert info["wav2vec2"]["frames_covered"] == info["deepspeech"]["frames_covered"] == n_frames
    assert info["hubert"]["revision"].startswith("folder:")
    assert info["hubert"]["shape"] == list(hu.shape)

    # Alignment: row i of aud_hu holds steps 2i, 2i+1; window i of aud_eo is centred on step 2i.
    from talkprep.models.audio_encoders import SpeechEncoder, resolve_model

    with SpeechEncoder.load(resolve_model(str(models["wav2vec2"]), "w"), "ctc") as enc:
        logits = enc.encode(read_wav(tmp_path / WAV_NAME)[0])
    assert len(logits) == 2 * n_frames - 1
    np.testing.assert_array_equal(eo[:, 8], logits[::2])
    np.testing.assert_array_equal(eo[1:, 7], logits[1::2])
    np.testing.assert_array_equal(eo[0, :8], 0.0)
    assert np.abs(hu).sum(axis=(1, 2)).min() > 0
    with SpeechEncoder.load(resolve_model(str(models["hubert"]), "h"), "hidden") as enc:
        in_memory = pair_steps(enc.encode(read_wav(tmp_path / WAV_NAME)[0]))
    np.testing.assert_array_equal(hu, in_memory)  # streamed to disk chunk by chunk: the same

    checks = task.check(FolderFacts(tmp_path, n_frames, None, 25.0))
    assert [c.group for c in checks] == ["aud_hu.npy", "aud_mel.npy", "aud_eo.npy", "aud_ds.npy"]
    assert all(c.ok for c in checks), [c.problem for c in checks]


def test_check_flags_length_and_shape(tmp_path: Path) -> None:
    task = AudioFeaturesTask()
    np.save(tmp_path / "aud_hu.npy", np.zeros((97, 2, 8), np.float32))
    np.save(tmp_path / "aud_ds.npy", np.zeros((100, 16, 28), np.float32))
    np.save(tmp_path / "aud_mel.npy", np.zeros((199, 80), np.float32))
    by_group = {c.group: c for c in task.check(FolderFacts(tmp_path, 100, None, 25.0))}
    assert "97 rows cover 97 frames" in by_group["aud_hu.npy"].problem
    assert "expected [rows, 16, 29]" in by_group["aud_ds.npy"].problem
    assert by_group["aud_mel.npy"].ok
    np.save(tmp_path / "aud_hu.npy", np.zeros((99, 2, 8), np.float32))
    assert task.check(FolderFacts(tmp_path, 100, None, 25.0))[0].ok


def test_other_fps_warns_once_and_checks_by_time(tmp_path: Path) -> None:
    """At 30 fps the 50 Hz mel rows still span the video; the only warning is about 25 fps."""
    write_wav(tmp_path / WAV_NAME, _speech_like(8.0))
    ctx = _context(tmp_path, 8.0, audio_features=("mel",), fps=30.0)
    result = AudioFeaturesTask().run(ctx)
    assert result.frames == 240
    assert result.info["features"]["mel"]["frames_covered"] == 240
    assert len(result.warnings) == 1 and "assumes 25 fps" in result.warnings[0]
    assert all(c.ok for c in AudioFeaturesTask().check(FolderFacts(tmp_path, 240, None, 30.0)))
    # Without ori_imgs or a manifest, N comes from aud.wav's duration.
    np.save(tmp_path / "aud_mel.npy", np.zeros((300, MEL_BINS), np.float32))
    (result_check,) = AudioFeaturesTask().check(FolderFacts(tmp_path, None, None, 30.0))
    assert "300 rows cover 180 frames but the dataset has 240" in result_check.problem


def test_deepspeech_needs_29_classes(models: dict[str, Path], tmp_path: Path) -> None:
    write_wav(tmp_path / WAV_NAME, _speech_like(1.0))
    ctx = _context(
        tmp_path, 1.0, audio_features=("deepspeech",), deepspeech_model=models["wav2vec2"]
    )
    with pytest.raises(TaskError, match="gives 12 classes"):
        AudioFeaturesTask().run(ctx)


# --- model resolution ---------------------------------------------------------------------------


def test_hub_id_resolves_from_the_cache(models: dict[str, Path], offline_hub: Path) -> None:
    from talkprep.models.audio_encoders import resolve_model

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = offline_hub / "models--tiny--hubert"
    shutil.copytree(models["hubert"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    source = resolve_model("tiny/hubert", "--hubert-model")
    assert source.from_hub and source.revision == commit
    assert source.path == repo / "snapshots" / commit
    # A snapshot holding only the config (e.g. a config-only look-up) is not enough offline.
    (repo / "snapshots" / commit / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="hf download tiny/hubert"):
        resolve_model("tiny/hubert", "--hubert-model")


def test_missing_weights_say_what_to_do(tmp_path: Path) -> None:
    from talkprep.models.audio_encoders import resolve_model

    with pytest.raises(MissingWeightsError) as err:
        resolve_model("facebook/hubert-large-ls960-ft", "--hubert-model")
    message = str(err.value)
    assert "hf download facebook/hubert-large-ls960-ft" in message
    assert "--hubert-model DIR" in message and "\n" not in message
    with pytest.raises(MissingWeightsError, match="no such folder"):
        resolve_model(str(tmp_path / "nowhere" / "model"), "--hubert-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="lacks config.json"):
        resolve_model(str(tmp_path / "empty"), "--hubert-model")


# --- through the command line -------------------------------------------------------------------


def _write_video(path: Path, seconds: float) -> Path:
    """A small mp4 with an AAC audio track (a 440 Hz tone) and flat grey frames."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=RATE)
        audio.layout = "mono"
        for i in range(int(seconds * 25)):
            image = np.full((64, 64, 3), (i * 5) % 255, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        tone = _speech_like(seconds)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + 1024], format="flt", layout="mono"
            )
            frame.sample_rate = RATE
            frame.pts = start
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def test_offline_missing_weights_fail_only_task_2(tmp_path: Path) -> None:
    from talkprep.cli import main

    video = _write_video(tmp_path / "talk.mp4", 2.0)
    out = tmp_path / "out"
    status = main(
        ["process", str(video), "-o", str(out), "--tasks", "1-3", "--device", "cpu", "-q"]
    )
    assert status == 3
    tasks = json.loads(manifest_path(out).read_text())["tasks"]
    assert tasks["audio"]["status"] == tasks["frames"]["status"] == "done"
    assert tasks["audio_features"]["status"] == "failed"
    assert "hf download facebook/hubert-large-ls960-ft" in tasks["audio_features"]["error"]
    assert (out / "aud.wav").is_file() and (out / "ori_imgs" / "49.jpg").is_file()
    assert not (out / "aud_hu.npy").exists()


def test_cli_features_check_and_resume(models: dict[str, Path], tmp_path: Path) -> None:
    from talkprep.cli import main

    video = _write_video(tmp_path / "talk.mp4", 2.0)
    out = tmp_path / "out"
    args = ["process", str(video), "-o", str(out), "--tasks", "1-3", "--device", "cpu", "-q"]
    args += ["--hubert-model", str(models["hubert"]), "--audio-features", "hubert,mel"]
    assert main(args) == 0
    record = json.loads(manifest_path(out).read_text())["tasks"]["audio_features"]
    assert record["outputs"] == {"aud_hu.npy": 1, "aud_mel.npy": 1}
    assert record["info"]["features"]["hubert"]["shape"] == [49, 2, TINY_HIDDEN]
    groups = {r.group: r for r in check_folder(out)}  # tasks 4-9 were not run: only 1-3 here
    assert groups["aud_hu.npy"].ok and groups["aud_mel.npy"].ok, groups
    stamp = (out / "aud_hu.npy").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "aud_hu.npy").stat().st_mtime_ns == stamp  # up to date: skipped
    np.save(out / "aud_hu.npy", np.zeros((40, 2, TINY_HIDDEN), np.float32))
    assert "rows cover 40 frames" in {r.group: r for r in check_folder(out)}["aud_hu.npy"].problem
    assert main(["check", str(out)]) == 1


def test_real_clip_features(processed, models: dict[str, Path]) -> None:
    """The shared 20 s anchor clip: its aud.wav from task 1, then mel and tiny-HuBERT features."""
    out = processed(
        "anchor", tasks="1,2,3", hubert_model=str(models["hubert"]), audio_features="hubert,mel"
    )
    record = json.loads(manifest_path(out).read_text())["tasks"]["audio_features"]
    n_frames = record["info"]["n_frames"]
    assert n_frames == 500
    assert np.load(out / "aud_hu.npy").shape == (499, 2, TINY_HIDDEN)
    mel = np.load(out / "aud_mel.npy")
    assert mel.shape == (1000, MEL_BINS)
    assert mel.max() > np.log(MEL_FLOOR) + 20  # speech, not silence
    assert not record["warnings"]


# --- models on first use ------------------------------------------------------------------------


COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture()
def fake_hub(
    monkeypatch: pytest.MonkeyPatch, offline_hub: Path, models: dict[str, Path]
) -> list[str]:
    """An online hub without the network: a "download" copies the tiny HuBERT into the cache
    layout huggingface_hub itself reads. Returns the ids downloaded."""
    import huggingface_hub
    from huggingface_hub import constants

    from talkprep.models import audio_encoders

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(audio_encoders, "hub_reachable", lambda timeout=0.0: True)
    real = huggingface_hub.snapshot_download
    downloads: list[str] = []

    def snapshot_download(spec: str, local_files_only: bool = False, **_: object) -> str:
        if local_files_only:
            return real(spec, local_files_only=True)
        downloads.append(spec)
        repo = offline_hub / f"models--{spec.replace('/', '--')}"
        shutil.copytree(models["hubert"], repo / "snapshots" / COMMIT)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
        return str(repo / "snapshots" / COMMIT)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(
        huggingface_hub.HfApi, "list_repo_files", lambda self, spec: ["model.safetensors"]
    )
    return downloads


def test_first_use_downloads_into_the_cache_then_works_offline(fake_hub: list[str]) -> None:
    from talkprep.models.audio_encoders import resolve_model

    source = resolve_model("tiny/hubert", "--hubert-model")
    assert fake_hub == ["tiny/hubert"]
    assert source.from_hub and source.revision == COMMIT
    again = resolve_model("tiny/hubert", "--hubert-model", offline=True)
    assert again.path == source.path and fake_hub == ["tiny/hubert"], "cached: no second fetch"


def test_offline_forbids_downloads_even_when_the_hub_answers(fake_hub: list[str]) -> None:
    from talkprep.models.audio_encoders import resolve_model

    with pytest.raises(MissingWeightsError) as err:
        resolve_model("tiny/hubert", "--hubert-model", offline=True)
    message = str(err.value)
    assert "--offline forbids downloads" in message and "hf download tiny/hubert" in message
    assert fake_hub == []


def test_offline_option_fails_only_task_2_with_the_fetch_command(
    fake_hub: list[str], tmp_path: Path
) -> None:
    from talkprep.cli import main

    video = _write_video(tmp_path / "talk.mp4", 2.0)
    out = tmp_path / "out"
    args = ["process", str(video), "-o", str(out), "--tasks", "1-3", "--device", "cpu"]
    assert main([*args, "-q", "--offline", "--hubert-model", "tiny/hubert"]) == 3
    tasks = json.loads(manifest_path(out).read_text())["tasks"]
    assert tasks["audio"]["status"] == tasks["frames"]["status"] == "done"
    assert "hf download tiny/hubert" in tasks["audio_features"]["error"]
    assert fake_hub == []
