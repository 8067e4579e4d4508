"""Mutants for recurrent networks, training mechanics and the remaining systems: one planted bug each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from nnspec.backends.numpy import NumpyBackend, _sigmoid

FRAMEWORK = None  # NumPy mutants: they run wherever nnspec does

Array = np.ndarray


# -- recurrent cells -----------------------------------------------------------------------------


class RnnRecurrentWeightsHalved(NumpyBackend):
    """The RNN cell applies half the recurrent matrix (h' = tanh(W_ih x + 0.5 W_hh h + b))."""

    name: ClassVar[str] = "mutant-rnn-recurrent-halved"

    def rnn_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        return np.tanh(x @ params["w_ih"].T + 0.5 * (h @ params["w_hh"].T) + params["b"])


class RnnRecurrentWeightsTransposed(NumpyBackend):
    """The RNN cell multiplies by W_hh^T instead of W_hh (h @ w_hh rather than h @ w_hh.T)."""

    name: ClassVar[str] = "mutant-rnn-recurrent-transposed"

    def rnn_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        return np.tanh(x @ params["w_ih"].T + h @ params["w_hh"] + params["b"])


class LstmGatesTanh(NumpyBackend):
    """The LSTM's input, forget and output gates use tanh instead of sigmoid (range (-1, 1))."""

    name: ClassVar[str] = "mutant-lstm-gates-tanh"

    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        gates = x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"]
        input_gate, forget_gate, candidate, output_gate = np.split(gates, 4, axis=-1)
        c_next = np.tanh(forget_gate) * c + np.tanh(input_gate) * np.tanh(candidate)
        return np.tanh(output_gate) * np.tanh(c_next), c_next


class LstmForgetBiasIgnored(NumpyBackend):
    """The forget gate's block of the bias is dropped, so a forget-bias initialisation has no effect."""

    name: ClassVar[str] = "mutant-lstm-forget-bias-ignored"

    def lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        hidden = h.shape[-1]
        bias = params["b"].copy()
        bias[hidden : 2 * hidden] = 0.0
        return super().lstm_cell(x, h, c, {**params, "b": bias})


class PeepholeOutputSeesPreviousCell(NumpyBackend):
    """The peephole output gate reads C_{t-1} instead of the new cell state C_t."""

    name: ClassVar[str] = "mutant-peephole-output-sees-old-cell"

    def peephole_lstm_cell(self, x: Array, h: Array, c: Array, params: dict[str, Array]) -> tuple[Array, Array]:
        gates = x @ params["w_ih"].T + h @ params["w_hh"].T + params["b"]
        input_gate, forget_gate, candidate, output_gate = np.split(gates, 4, axis=-1)
        c_next = (_sigmoid(forget_gate + params["p_f"] * c) * c
                  + _sigmoid(input_gate + params["p_i"] * c) * np.tanh(candidate))
        return _sigmoid(output_gate + params["p_o"] * c) * np.tanh(c_next), c_next


class GruUpdateGateSwapped(NumpyBackend):
    """The GRU interpolates the other way round: h' = z * n + (1 - z) * h."""

    name: ClassVar[str] = "mutant-gru-update-swapped"

    def gru_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        update, candidate = _gru_parts(x, h, params)
        return update * candidate + (1.0 - update) * h


class GruCarryNotGated(NumpyBackend):
    """The GRU adds the old state ungated: h' = (1 - z) * n + h, so it can leave [h, n]."""

    name: ClassVar[str] = "mutant-gru-carry-not-gated"

    def gru_cell(self, x: Array, h: Array, params: dict[str, Array]) -> Array:
        update, candidate = _gru_parts(x, h, params)
        return (1.0 - update) * candidate + h


def _gru_parts(x: Array, h: Array, params: dict[str, Array]) -> tuple[Array, Array]:
    """The update gate z and the candidate n of the protocol's GRU."""
    input_r, input_z, input_n = np.split(x @ params["w_ih"].T + params["b_ih"], 3, axis=-1)
    hidden_r, hidden_z, hidden_n = np.split(h @ params["w_hh"].T + params["b_hh"], 3, axis=-1)
    return _sigmoid(input_z + hidden_z), np.tanh(input_n + _sigmoid(input_r + hidden_r) * hidden_n)


# -- recurrent layers ----------------------------------------------------------------------------


class LstmSequenceIgnoresLengths(NumpyBackend):
    """The layer runs over the padding too: final states are taken at the padded end."""

    name: ClassVar[str] = "mutant-lstm-sequence-ignores-lengths"

    def lstm_sequence(self, xs: Array, h0: Array, c0: Array, params: dict[str, Array], lengths: Any = None,
                      reverse: bool = False) -> tuple[Array, Array, Array]:
        return super().lstm_sequence(xs, h0, c0, params, None, reverse)


class LstmSequenceReverseFromPaddedEnd(NumpyBackend):
    """The backward direction flips the whole padded sequence, so it starts on padding."""

    name: ClassVar[str] = "mutant-lstm-sequence-reverse-from-padded-end"

    def lstm_sequence(self, xs: Array, h0: Array, c0: Array, params: dict[str, Array], lengths: Any = None,
                      reverse: bool = False) -> tuple[Array, Array, Array]:
        if not reverse or lengths is None:
            return super().lstm_sequence(xs, h0, c0, params, lengths, reverse)
        steps = xs.shape[1]
        outputs, h, c = super().lstm_sequence(xs[:, ::-1], h0, c0, params, None, False)
        outputs = outputs[:, ::-1].copy()
        outputs[np.arange(steps)[None, :] >= np.asarray(lengths)[:, None]] = 0.0
        return outputs, h, c


class LstmSequenceOutputsCellState(NumpyBackend):
    """The layer's per-step outputs are the cell states C_t instead of the hidden states h_t."""

    name: ClassVar[str] = "mutant-lstm-sequence-outputs-cell-state"

    def lstm_sequence(self, xs: Array, h0: Array, c0: Array, params: dict[str, Array], lengths: Any = None,
                      reverse: bool = False) -> tuple[Array, Array, Array]:
        batch, steps, _ = xs.shape
        lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
        outputs = np.zeros((batch, steps, h0.shape[-1]), dtype=np.result_type(xs, h0, c0))
        h, c = h0, c0
        for step in range(steps):
            positions = lengths - 1 - step if reverse else np.full(batch, step)
            active = step < lengths
            h_next, c_next = self.lstm_cell(xs[np.arange(batch), np.clip(positions, 0, steps - 1)], h, c, params)
            h, c = np.where(active[:, None], h_next, h), np.where(active[:, None], c_next, c)
            outputs[np.arange(batch)[active], positions[active]] = c_next[active]
        return outputs, h, c


# -- training mechanics --------------------------------------------------------------------------


class ClipGradPerArray(NumpyBackend):
    """Each gradient array is clipped by its own norm instead of the global norm."""

    name: ClassVar[str] = "mutant-clip-per-array"

    def clip_grad_norm(self, grads: Sequence[Array], max_norm: float) -> list[Array]:
        return [super(ClipGradPerArray, self).clip_grad_norm([g], max_norm)[0] for g in grads]


class ClipGradByValue(NumpyBackend):
    """Gradients are clipped elementwise to [-max_norm, max_norm] (clip by value, not by norm)."""

    name: ClassVar[str] = "mutant-clip-by-value"

    def clip_grad_norm(self, grads: Sequence[Array], max_norm: float) -> list[Array]:
        return [np.clip(g, -max_norm, max_norm) for g in grads]


class ClipGradAlwaysRescales(NumpyBackend):
    """Gradients are always rescaled to norm max_norm, even when their norm is below it."""

    name: ClassVar[str] = "mutant-clip-always-rescales"

    def clip_grad_norm(self, grads: Sequence[Array], max_norm: float) -> list[Array]:
        total = np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64))) for g in grads))
        return [(g * (max_norm / total)).astype(g.dtype) for g in grads]


class StopGradientPassesGradient(NumpyBackend):
    """stop_gradient is the identity for gradients too (a detach that does not detach)."""

    name: ClassVar[str] = "mutant-stop-gradient-identity"

    def stop_gradient(self, x: Array) -> Array:
        return x


class WarmupPeaksLate(NumpyBackend):
    """The warm-up ramp uses 2 * warmup, so the peak comes at twice the warm-up step."""

    name: ClassVar[str] = "mutant-warmup-peaks-late"

    def warmup_schedule(self, steps: Array, d_model: int, warmup: int) -> Array:
        return super().warmup_schedule(steps, d_model, 2 * warmup)


class WarmupDecaysAsInverseStep(NumpyBackend):
    """After the warm-up the rate decays as 1/step instead of 1/sqrt(step) (continuous at the peak)."""

    name: ClassVar[str] = "mutant-warmup-inverse-step-decay"

    def warmup_schedule(self, steps: Array, d_model: int, warmup: int) -> Array:
        steps = np.asarray(steps, np.float64)
        peak = d_model**-0.5 * warmup**-0.5
        return np.where(steps <= warmup, peak * steps / warmup, peak * warmup / steps)


# -- sequence-to-sequence ------------------------------------------------------------------------


class AdditiveScoresWithoutTanh(NumpyBackend):
    """Bahdanau scores without the tanh: v^T (W_1 s + W_2 h_i), a linear score."""

    name: ClassVar[str] = "mutant-additive-no-tanh"

    def additive_attention_scores(self, query: Array, keys: Array, params: dict[str, Array]) -> Array:
        return ((query @ params["w_query"].T)[:, None, :] + keys @ params["w_key"].T) @ params["v"]


class LuongGeneralWeightTransposed(NumpyBackend):
    """Luong's general score uses W^T: h_i^T W s instead of s^T W h_i."""

    name: ClassVar[str] = "mutant-luong-general-transposed"

    def luong_scores(self, query: Array, keys: Array, weight: Array | None = None) -> Array:
        return super().luong_scores(query, keys, None if weight is None else weight.T)


class AttentionSoftmaxOffByOne(NumpyBackend):
    """Attention weights are exp(x) / (1 + sum exp(x)) (an implicit zero logit): they sum below one."""

    name: ClassVar[str] = "mutant-attention-softmax-plus-one"

    def attention_weights(self, q: Array, k: Array, mask: Any = None, is_causal: bool = False,
                          scale: float | None = None) -> Array:
        logits = (q @ np.swapaxes(k, -1, -2)) * (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale)
        peak = np.maximum(np.max(logits, axis=-1, keepdims=True), 0.0)
        exponentials = np.exp(logits - peak)
        return exponentials / (np.exp(-peak) + np.sum(exponentials, axis=-1, keepdims=True))


class BeamSearchDropsFirstScore(NumpyBackend):
    """Beam search ranks by the first token but leaves its log-probability out of the scores."""

    name: ClassVar[str] = "mutant-beam-drops-first-score"

    def beam_search(self, initial: Array, transitions: Array, beam_width: int) -> tuple[Array, Array]:
        tokens, scores = super().beam_search(initial, transitions, beam_width)
        return tokens, scores - initial[tokens[:, 0]]


class BeamSearchPerParent(NumpyBackend):
    """Every beam entry keeps only its own best continuation: k parallel greedy searches."""

    name: ClassVar[str] = "mutant-beam-per-parent"

    def beam_search(self, initial: Array, transitions: Array, beam_width: int) -> tuple[Array, Array]:
        first = np.argsort(-initial, kind="stable")[:beam_width]
        sequences, scores = first[:, None], initial[first]
        for table in transitions:
            rows = table[sequences[:, -1]]
            best = np.argmax(rows, axis=-1)
            scores = scores + rows[np.arange(len(best)), best]
            sequences = np.concatenate([sequences, best[:, None]], axis=1)
        order = np.argsort(-scores, kind="stable")
        return sequences[order], scores[order]


class BeamSearchRanksByLastStep(NumpyBackend):
    """Beam search ranks extensions by the last step's log-probability alone, ignoring the prefix score."""

    name: ClassVar[str] = "mutant-beam-ranks-by-last-step"

    def beam_search(self, initial: Array, transitions: Array, beam_width: int) -> tuple[Array, Array]:
        vocab = initial.shape[0]
        first = np.argsort(-initial, kind="stable")[:beam_width]
        sequences, scores = first[:, None], initial[first]
        for table in transitions:
            step = table[sequences[:, -1]].reshape(-1)
            best = np.argsort(-step, kind="stable")[:beam_width]
            parents, tokens = np.divmod(best, vocab)
            scores = scores[parents] + step[best]
            sequences = np.concatenate([sequences[parents], tokens[:, None]], axis=1)
        order = np.argsort(-scores, kind="stable")
        return sequences[order], scores[order]


# -- pretraining ---------------------------------------------------------------------------------


class MlmSelectsTwentyPercent(NumpyBackend):
    """Masked-LM corruption selects 20% of tokens instead of 15%."""

    name: ClassVar[str] = "mutant-mlm-selects-20-percent"

    def mlm_corrupt(self, tokens: Array, vocab_size: int, mask_id: int, seed: int) -> tuple[Array, Array]:
        rng = np.random.default_rng(seed)
        selected = rng.random(tokens.shape) < 0.20
        corrupted = np.where(selected & (rng.random(tokens.shape) < 0.8), mask_id, tokens)
        return corrupted.astype(tokens.dtype), selected


class MlmSelectedMarksOnlyChanged(NumpyBackend):
    """The selected mask is computed as corrupted != tokens, so kept-as-is selections are not marked."""

    name: ClassVar[str] = "mutant-mlm-selected-marks-only-changed"

    def mlm_corrupt(self, tokens: Array, vocab_size: int, mask_id: int, seed: int) -> tuple[Array, Array]:
        corrupted, _ = super().mlm_corrupt(tokens, vocab_size, mask_id, seed)
        return corrupted, corrupted != tokens


class MlmCorruptsUnselected(NumpyBackend):
    """Random replacement is applied to 1% of all positions, selected or not."""

    name: ClassVar[str] = "mutant-mlm-corrupts-unselected"

    def mlm_corrupt(self, tokens: Array, vocab_size: int, mask_id: int, seed: int) -> tuple[Array, Array]:
        corrupted, selected = super().mlm_corrupt(tokens, vocab_size, mask_id, seed)
        rng = np.random.default_rng(seed + 1)
        noise = rng.random(tokens.shape) < 0.01
        corrupted = np.where(noise, (tokens + 1) % vocab_size, corrupted)
        return corrupted.astype(tokens.dtype), selected


# -- vision and graphs ---------------------------------------------------------------------------


class PatchEmbedColumnMajor(NumpyBackend):
    """Patch tokens are numbered column by column instead of row by row."""

    name: ClassVar[str] = "mutant-patch-embed-column-major"

    def patch_embed(self, images: Array, weight: Array, bias: Array) -> Array:
        tokens = super().patch_embed(images, weight, bias)
        patch = weight.shape[-1]
        rows, cols = images.shape[2] // patch, images.shape[3] // patch
        grid = tokens.reshape(tokens.shape[0], rows, cols, -1)
        return grid.transpose(0, 2, 1, 3).reshape(tokens.shape)


class PatchEmbedAddsPositions(NumpyBackend):
    """The patch embedding adds a position-dependent term (0.1 * token index) to every token."""

    name: ClassVar[str] = "mutant-patch-embed-adds-positions"

    def patch_embed(self, images: Array, weight: Array, bias: Array) -> Array:
        tokens = super().patch_embed(images, weight, bias)
        return tokens + 0.1 * np.arange(tokens.shape[1], dtype=tokens.dtype)[None, :, None]


class GatSoftmaxOverAllNodes(NumpyBackend):
    """GAT normalises over every node, then zeroes non-neighbours without renormalising."""

    name: ClassVar[str] = "mutant-gat-softmax-over-all-nodes"

    def gat_attention(self, h: Array, adjacency: Array, w: Array, a: Array, negative_slope: float = 0.2) -> Array:
        everyone = super().gat_attention(h, np.ones_like(adjacency, dtype=bool), w, a, negative_slope)
        return np.where(adjacency, everyone, 0.0)


class GatWithoutLeakyRelu(NumpyBackend):
    """GAT scores skip the LeakyReLU (negative slope 1)."""

    name: ClassVar[str] = "mutant-gat-no-leaky-relu"

    def gat_attention(self, h: Array, adjacency: Array, w: Array, a: Array, negative_slope: float = 0.2) -> Array:
        return super().gat_attention(h, adjacency, w, a, 1.0)


class GatTruncatesNeighbours(NumpyBackend):
    """GAT keeps only the first three neighbours of each node, by node index."""

    name: ClassVar[str] = "mutant-gat-first-three-neighbours"

    def gat_attention(self, h: Array, adjacency: Array, w: Array, a: Array, negative_slope: float = 0.2) -> Array:
        kept = np.asarray(adjacency, dtype=bool) & (np.cumsum(adjacency, axis=-1) <= 3)
        return super().gat_attention(h, kept, w, a, negative_slope)


REJECTED_BY: dict[type[NumpyBackend], tuple[str, ...]] = {
    RnnRecurrentWeightsHalved: ("rnn.gradient.explodes", "rnn.gradient.step_jacobian"),
    RnnRecurrentWeightsTransposed: ("rnn.gradient.step_jacobian",),
    LstmGatesTanh: ("lstm.gates.bounded",),
    LstmForgetBiasIgnored: ("lstm.gradient.forget_bias_raises_retention",),
    PeepholeOutputSeesPreviousCell: ("lstm.peephole.matches_equations",),
    GruUpdateGateSwapped: ("gru.cell.matches_equations", "gru.gradient.update_gate_jacobian"),
    GruCarryNotGated: ("gru.cell.matches_equations", "gru.cell.convex_combination"),
    LstmSequenceIgnoresLengths: ("rnn_structures.padding.final_state_at_true_length",),
    LstmSequenceReverseFromPaddedEnd: ("rnn_structures.padding.final_state_at_true_length",
                                       "rnn_structures.bidirectional.reversal_swaps_directions"),
    LstmSequenceOutputsCellState: ("rnn_structures.sequence.equals_unrolled_cells", "rnn_structures.stacked.layers_compose"),
    ClipGradPerArray: ("training.clipping.keeps_direction", "training.clipping.norm_threshold"),
    ClipGradByValue: ("training.clipping.keeps_direction", "training.clipping.norm_threshold"),
    ClipGradAlwaysRescales: ("training.clipping.norm_threshold", "training.clipping.keeps_direction"),
    StopGradientPassesGradient: ("training.truncated_bptt.gradient_window",),
    WarmupPeaksLate: ("training.warmup.matches_formula", "training.warmup.shape"),
    WarmupDecaysAsInverseStep: ("training.warmup.matches_formula", "training.warmup.shape"),
    AdditiveScoresWithoutTanh: ("seq2seq.attention.additive_matches_formula",),
    LuongGeneralWeightTransposed: ("seq2seq.attention.luong_matches_formula",),
    AttentionSoftmaxOffByOne: ("seq2seq.attention.context_is_convex_combination",),
    BeamSearchDropsFirstScore: ("seq2seq.beam.width_one_is_greedy", "seq2seq.beam.scores_are_sequence_log_probs",
                                "seq2seq.beam.wide_beam_is_exhaustive"),
    BeamSearchPerParent: ("seq2seq.beam.wide_beam_is_exhaustive", "seq2seq.beam.exact_for_context_free_models"),
    BeamSearchRanksByLastStep: ("seq2seq.beam.wide_beam_is_exhaustive",),
    MlmSelectsTwentyPercent: ("pretraining.mlm.selection_rate", "pretraining.mlm.replacement_split"),
    MlmSelectedMarksOnlyChanged: ("pretraining.mlm.selection_rate", "pretraining.mlm.replacement_split"),
    MlmCorruptsUnselected: ("pretraining.mlm.unselected_unchanged",),
    PatchEmbedColumnMajor: ("vision_graph.vit.patch_embed_is_strided_convolution",),
    PatchEmbedAddsPositions: ("vision_graph.vit.patch_embed_is_strided_convolution", "vision_graph.vit.translation_by_patches"),
    GatSoftmaxOverAllNodes: ("vision_graph.gat.softmax_over_neighbours", "vision_graph.gat.matches_formula"),
    GatWithoutLeakyRelu: ("vision_graph.gat.matches_formula",),
    GatTruncatesNeighbours: ("vision_graph.gat.relabelling_equivariance", "vision_graph.gat.matches_formula"),
}
