"""merit_plotting: the 12-lead layout, missing leads, the reconstruction overlay, training and ROC curves."""

import numpy as np
import pytest
import wfdb
from PIL import Image

from merit_plotting import (
    STANDARD_LEAD_NAMES,
    plot_clinical_efficacy,
    plot_ecg,
    plot_roc,
    plot_training_curves,
    standard_lead_name,
)
from merit_plotting.curves import NOT_LOGGED, TRAINING_CURVE_PANELS


TRACE_COLOR = "#172331"  # ecg-plot's default trace colour
SPEED_MM_PER_S, GAIN_MM_PER_MV = 25.0, 10.0


@pytest.fixture(scope="module")
def record(ptbxl_sample_dir):
    """PTB-XL record 1 at 100 Hz: (12, 1000) in mV and its header's lead names (upper case `AVR AVL AVF`)."""
    signal, fields = wfdb.rdsamp(str(ptbxl_sample_dir / "records100" / "00000" / "00001_lr"))
    return signal.T, float(fields["fs"]), list(fields["sig_name"])


def traces(figure):
    """ECG traces drawn by ecg-plot (grid lines have two points, traces many)."""
    (axes,) = figure.axes
    return [line for line in axes.lines if line.get_color() == TRACE_COLOR and len(line.get_xdata()) > 6]


def texts(figure):
    return [text.get_text() for text in figure.axes[0].texts]


def gids(figure, prefix):
    children = figure.axes[0].get_children()
    return sorted(artist.get_gid() for artist in children if str(artist.get_gid()).startswith(prefix))


def test_standard_lead_names_are_matched_case_insensitively():
    names = ("avr", "AVL", " aVF ", "v1", "ii")
    assert [standard_lead_name(name) for name in names] == ["aVR", "aVL", "aVF", "V1", "II"]
    assert standard_lead_name("vx") is None
    with pytest.raises(ValueError, match="must be strings"):
        standard_lead_name(3)


def test_standard_layout_scales_and_calibration(record, tmp_path):
    signal, fs, names = record
    assert "AVR" in names  # the header spells it upper case; the chart must say aVR
    figure = plot_ecg(signal, fs, names, path=tmp_path / "ecg.png")
    assert len(figure.axes) == 1
    labels = texts(figure)
    # 12 panels of 2.5 s in four sequential columns + the lead-II rhythm strip: 13 lead labels, II twice
    assert sorted(label for label in labels if label in STANDARD_LEAD_NAMES or label == "AVR") == sorted(
        [*STANDARD_LEAD_NAMES, "II"]
    )
    drawn = traces(figure)
    assert len(drawn) == 13
    spans = sorted(np.ptp(line.get_xdata()) for line in drawn)
    # 25 mm/s: a 2.5-s column is 62.5 mm wide, the 10-s rhythm strip 250 mm (within one sample either side)
    assert spans[0] == pytest.approx(2.5 * SPEED_MM_PER_S, abs=2 * SPEED_MM_PER_S / fs)
    assert spans[-1] == pytest.approx(10.0 * SPEED_MM_PER_S, abs=2 * SPEED_MM_PER_S / fs)
    # 10 mm/mV: a trace's vertical extent is the signal's peak-to-peak amplitude times the gain
    rhythm = drawn[int(np.argmax([np.ptp(line.get_xdata()) for line in drawn]))]
    assert np.ptp(rhythm.get_ydata()) == pytest.approx(np.ptp(signal[names.index("II")]) * GAIN_MM_PER_MV, rel=1e-6)
    # one 1-mV calibration pulse (0.2 s wide, 10 mm high) at the start of each of the 4 rows
    pulses = [line for line in figure.axes[0].lines if len(line.get_xdata()) == 6]
    assert len(pulses) == 4
    for pulse in pulses:
        assert np.ptp(pulse.get_ydata()) == pytest.approx(GAIN_MM_PER_MV)
        assert np.ptp(pulse.get_xdata()) == pytest.approx(0.2 * SPEED_MM_PER_S + 2)
    assert any("25 mm/s" in label and "10 mm/mV" in label for label in labels)
    # ECG paper: 1-mm minor and 5-mm major grid lines, one line collection each
    grids = [collection for collection in figure.axes[0].collections if collection.get_gid() == "ecg-grid"]
    assert len(grids) == 2
    for collection, spacing in zip(grids, (1.0, 5.0), strict=True):
        segments = np.asarray(collection.get_segments())
        # the rhythm strip, at the bottom: its horizontal lines span 10 s, its vertical ones its height
        horizontal = segments[np.isclose(segments[:, 1, 0] - segments[:, 0, 0], 10.0 * SPEED_MM_PER_S)]
        assert np.diff(np.sort(horizontal[:, 0, 1])) == pytest.approx(spacing)
        is_vertical = segments[:, 0, 0] == segments[:, 1, 0]
        vertical = segments[is_vertical & (segments[:, 0, 1] >= horizontal[:, 0, 1].min())]
        assert np.diff(np.sort(vertical[:, 0, 0])) == pytest.approx(spacing)
        assert np.ptp(vertical[:, 0, 0]) == pytest.approx(10.0 * SPEED_MM_PER_S // spacing * spacing)
    assert not gids(figure, "missing-lead:") and "not recorded" not in " ".join(labels)
    with Image.open(tmp_path / "ecg.png") as image:
        assert image.format == "PNG" and image.width > image.height > 500


def test_lead_order_and_case_do_not_change_the_chart(record):
    signal, fs, names = record
    order = np.random.default_rng(0).permutation(len(names))
    shuffled_names = [names[index].lower() for index in order]
    reference = [line.get_ydata() for line in traces(plot_ecg(signal, fs, names))]
    shuffled = [line.get_ydata() for line in traces(plot_ecg(signal[order], fs, shuffled_names))]
    assert len(reference) == len(shuffled) == 13
    for expected, actual in zip(reference, shuffled, strict=True):
        np.testing.assert_array_equal(expected, actual)


def test_missing_leads_are_shown_as_missing_not_as_flat_lines(record):
    signal, fs, names = record
    signal = signal.copy()
    lead_mask = np.ones(12)
    lead_mask[names.index("V4")] = 0  # flagged missing by the processor
    signal[names.index("AVL")] = np.nan  # all-NaN: not recorded either
    keep = [index for index, name in enumerate(names) if name != "V6"]  # absent from the record
    figure = plot_ecg(signal[keep], fs, [names[index] for index in keep], lead_mask=lead_mask[keep])
    assert gids(figure, "missing-lead:") == ["missing-lead:V4", "missing-lead:V6", "missing-lead:aVL"]
    assert {"V4 not recorded", "V6 not recorded", "aVL not recorded"} <= set(texts(figure))
    assert len(traces(figure)) == 13 - 3  # no trace at all for the missing leads, not a zero line


def test_missing_rhythm_lead_greys_the_rhythm_strip_too(record):
    signal, fs, names = record
    keep = [index for index, name in enumerate(names) if name != "II"]
    figure = plot_ecg(signal[keep], fs, [names[index] for index in keep])
    assert gids(figure, "missing-lead:") == ["missing-lead:II", "missing-lead:II"]
    assert texts(figure).count("II not recorded") == 2


def test_longer_records_show_their_first_ten_seconds_unless_a_window_is_given(record):
    signal, fs, names = record
    long_signal = np.concatenate([signal, signal, signal], axis=1)  # 30 s
    longest = max(np.ptp(line.get_xdata()) for line in traces(plot_ecg(long_signal, fs, names)))
    assert longest == pytest.approx(10.0 * SPEED_MM_PER_S, abs=2 * SPEED_MM_PER_S / fs)
    windowed = traces(plot_ecg(long_signal, fs, names, window=(20.0, 24.0)))
    assert max(np.ptp(line.get_xdata()) for line in windowed) == pytest.approx(4.0 * SPEED_MM_PER_S, abs=1.0)


def overlay_inputs(num_patches=20, patch_size=50):
    """A (12, 1000) model input, its reconstruction (12, 20, 50) and a mask hiding patches 0 and 1 of lead I only."""
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(12, num_patches * patch_size))
    reconstruction = rng.normal(scale=0.1, size=(12, num_patches, patch_size))
    patch_mask = np.zeros((12, num_patches))
    patch_mask[0, :2] = 1
    return signal, reconstruction, patch_mask


def test_overlay_shades_hidden_patches_and_draws_the_reconstruction_over_them():
    signal, reconstruction, patch_mask = overlay_inputs()
    figure = plot_ecg(
        signal, 100, list(STANDARD_LEAD_NAMES), reconstruction=reconstruction, patch_mask=patch_mask,
        gain=4, amplitude_unit="SD",
    )  # fmt: skip
    # lead I shows 0-2.5 s: both hidden patches (0-0.5 s, 0.5-1 s) fall in its panel; lead II's strip has none
    assert gids(figure, "hidden-patch") == ["hidden-patch", "hidden-patch"]
    lines = [artist for artist in figure.axes[0].lines if artist.get_gid() == "reconstruction"]
    assert len(lines) == 13
    drawn = [line for line in lines if np.isfinite(line.get_ydata()).any()]
    assert len(drawn) == 1  # only lead I has hidden patches
    finite = np.isfinite(drawn[0].get_ydata())
    assert finite.sum() == 100  # two patches of 50 samples
    # drawn at the chart's gain, on the same baseline as the original: compare with the trace of lead I's panel
    original = next(line for line in traces(figure) if line.get_xdata()[0] == drawn[0].get_xdata()[0])
    np.testing.assert_allclose(original.get_xdata()[:100], drawn[0].get_xdata()[:100])
    baseline_offset = original.get_ydata()[:100] + signal[0, :100] * 4
    np.testing.assert_allclose(drawn[0].get_ydata()[finite] + reconstruction[0, :2].ravel() * 4, baseline_offset)
    assert any("mm/SD" in text for text in texts(figure)) and not any("mV" in text for text in texts(figure))
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["original", "reconstruction (hidden patches)", "hidden patch"]


def test_overlay_undoes_per_patch_normalisation():
    signal, _, patch_mask = overlay_inputs()
    zeros = np.zeros((12, 20, 50))  # a normalised prediction of 0 is the patch mean
    figure = plot_ecg(
        signal, 100, list(STANDARD_LEAD_NAMES), reconstruction=zeros, patch_mask=patch_mask, norm_patch_loss=True,
        gain=1,
    )  # fmt: skip
    (line,) = [a for a in figure.axes[0].lines if a.get_gid() == "reconstruction" and np.isfinite(a.get_ydata()).any()]
    values = line.get_ydata()[np.isfinite(line.get_ydata())]
    first_patch_mean = signal[0, :50].mean()
    assert np.ptp(values[:50]) == pytest.approx(0.0, abs=1e-9)
    assert values[50] - values[0] == pytest.approx(first_patch_mean - signal[0, 50:100].mean())  # y points down


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"signal": np.zeros((2, 12, 100))}, r"shape \(leads, samples\), got shape \(2, 12, 100\)"),
        ({"lead_names": list(STANDARD_LEAD_NAMES[:11])}, "must name each of the 12 rows"),
        ({"lead_names": [*STANDARD_LEAD_NAMES[:11], "V7"]}, "'V7', which is not one of the 12 standard leads"),
        ({"lead_names": [*STANDARD_LEAD_NAMES[:11], "AVR"]}, "names lead 'aVR' twice"),
        ({"sampling_rate": 0}, "`sampling_rate` must be a positive number"),
        ({"sampling_rate": "100"}, "`sampling_rate` must be a positive number"),
        ({"lead_mask": np.ones(11)}, r"`lead_mask` must have shape \(leads,\) = \(12,\)"),
        ({"signal": np.full((12, 100), np.inf)}, "infinite values"),
        ({"reconstruction": np.zeros((12, 2, 50))}, "both `reconstruction`"),
        ({"reconstruction": np.zeros((12, 3, 50)), "patch_mask": np.zeros((12, 3))}, "covers 3 x 50 = 150 samples"),
        ({"reconstruction": np.zeros((12, 2, 50)), "patch_mask": np.zeros((12, 3))}, r"`patch_mask` must have shape"),
        ({"reconstruction": np.zeros((12, 2, 50)), "patch_mask": np.full((12, 2), 0.5)}, "only 0 .visible. and 1"),
    ],
)
def test_plot_ecg_rejects_bad_input(kwargs, message):
    arguments = {"signal": np.zeros((12, 100)), "sampling_rate": 100, "lead_names": list(STANDARD_LEAD_NAMES)}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        plot_ecg(**arguments)


def history():
    entries = []
    for step in range(0, 100, 10):
        entry = {"step": step, "train/loss": 3.0 - step / 50, "train/reconstruction_loss": 1.0 - step / 200}
        entry["lr"] = 1e-4  # logged, not plotted
        if step % 50 == 0:
            entry.update({"val/loss": 3.1 - step / 50, "val/reconstruction_loss": 1.0})
            entry["val/zero_shot_macro_auroc"] = 0.6
        entries.append(entry)
    return entries


def test_training_curves_plot_train_and_validation_and_say_what_was_not_logged(tmp_path):
    figure = plot_training_curves(history(), tmp_path / "curves.png")
    assert [axes.get_title() for axes in figure.axes] == [title for _, title in TRAINING_CURVE_PANELS]
    loss, reconstruction, contrastive, auroc = figure.axes
    assert [line.get_label() for line in loss.lines] == ["train", "validation"]
    np.testing.assert_array_equal(loss.lines[0].get_xdata(), np.arange(0, 100, 10))
    np.testing.assert_array_equal(loss.lines[1].get_xdata(), [0, 50])
    assert len(reconstruction.lines) == 2 and [line.get_label() for line in auroc.lines] == ["validation"]
    assert not contrastive.lines and [text.get_text() for text in contrastive.texts] == [NOT_LOGGED]
    with Image.open(tmp_path / "curves.png") as image:
        assert image.format == "PNG"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "non-empty list of dicts"),
        ({"step": 1, "train/loss": 1.0}, "non-empty list of dicts"),
        ([{"train/loss": 1.0}], r"`history\[0\]` must be a dict with a numeric `step`"),
        ([{"step": 1, "lr": 1e-4}], "logs none of the plotted metrics"),
    ],
)
def test_training_curves_reject_bad_history(entries, message):
    with pytest.raises(ValueError, match=message):
        plot_training_curves(entries)


def test_roc_curves_and_per_class_auroc(tmp_path):
    from merit_evaluation.metrics import per_class_roc_auc

    rng = np.random.default_rng(0)
    labels = (rng.random((80, 4)) < 0.3).astype(int)
    labels[:, 3] = 0  # no positives: AUROC undefined
    scores = np.clip(labels * 0.4 + rng.random((80, 4)), 0, 1)
    names = ["CD", "HYP", "MI", "NORM"]
    expected = per_class_roc_auc(labels, scores)
    figure = plot_roc(labels, scores, names, expected, tmp_path / "roc.png", title="zero-shot")
    roc_axes, bar_axes = figure.axes
    legend = [text.get_text() for text in roc_axes.get_legend().get_texts()]
    assert legend == [f"{name} ({value:.3f})" for name, value in zip(names[:3], expected[:3])] + ["chance"]
    assert len(roc_axes.lines) == 3 + 1  # one curve per defined class + the chance diagonal
    assert "n/a" in [text.get_text() for text in bar_axes.texts]
    assert [label.get_text() for label in bar_axes.get_yticklabels()][-1] == "NORM"  # undefined class listed last
    assert f"macro AUROC {np.nanmean(expected):.3f} over 3 of 4 classes" in figure.get_suptitle()
    with Image.open(tmp_path / "roc.png") as image:
        assert image.format == "PNG"


def test_roc_rejects_mismatched_inputs():
    labels = np.array([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="must name each of the 2 score columns"):
        plot_roc(labels, labels * 0.5, ["only-one"], [0.5, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        plot_roc(labels, np.zeros((2, 3)), ["a", "b", "c"], [0.5, 0.5, 0.5])


def test_clinical_efficacy_bars_per_generator_and_class_with_the_ceiling(tmp_path):
    per_class = {
        "MERIT": {"NORM": 0.7, "MI": 0.0, "SR": 0.9},
        "nearest-neighbour": {"NORM": 0.5, "MI": 0.2, "SR": 0.8},
    }
    support = {"NORM": 40, "MI": 12, "SR": 90}
    ceiling = {"NORM": 0.8, "MI": 0.75, "SR": 1.0}
    figure = plot_clinical_efficacy(per_class, support, ceiling, tmp_path / "ce.png", title="test split")
    (axes,) = figure.axes
    bars = list(axes.patches)
    # one bar per generator and class, each as long as its F1, in the order given
    assert [round(bar.get_width(), 3) for bar in bars] == [0.7, 0.0, 0.9, 0.5, 0.2, 0.8]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["NORM (n=40)", "MI (n=12)", "SR (n=90)"]
    ticks = axes.collections[0].get_offsets()
    assert ticks[:, 0].tolist() == [0.8, 0.75, 1.0]  # the ceiling, one tick per class
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == ["extractor on the references (ceiling)", "MERIT", "nearest-neighbour"]
    with Image.open(tmp_path / "ce.png") as image:
        assert image.format == "PNG"
    with pytest.raises(ValueError, match=r"Generator 'MERIT' has no F1 for the classes \['HYP'\]"):
        plot_clinical_efficacy(per_class, {**support, "HYP": 3})
    with pytest.raises(ValueError, match="`ceiling` must hold an F1 for every class"):
        plot_clinical_efficacy(per_class, support, {"NORM": 0.8})
    with pytest.raises(ValueError, match="Nothing to draw"):
        plot_clinical_efficacy({}, support)


def test_readme_plotting_snippet_runs(repo_root, ptbxl_sample_dir, tokenizer, tmp_path, monkeypatch):
    import re

    import torch

    from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor

    section = (repo_root / "README.md").read_text().split("## Try it", 1)[1]
    snippets = [
        snippet for snippet in re.findall(r"```python\n(.*?)```", section, re.S) if "merit_plotting" in snippet
    ]
    snippet = snippets[0].replace("data/ptbxl-sample", str(ptbxl_sample_dir))
    torch.manual_seed(0)
    namespace = {
        "model": MeritForPreTraining(MeritConfig.from_preset("tiny")).eval(),
        "processor": MeritProcessor(MeritFeatureExtractor(), tokenizer),
    }
    monkeypatch.chdir(tmp_path)
    exec(snippet, namespace)
    for name in ("ecg.png", "reconstruction.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"
