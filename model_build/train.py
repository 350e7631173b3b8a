"""Training: embeddings from the frozen encoder, a softmax-regression head, optional encoder fine-tuning."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from categorizer.engine.classifier import create_session, load_tokenizer, normalize_text, run_length_sorted
from model_build.encoder import SentenceClassifier, SentenceEncoder, base_encoder_dir, load_encoder
from model_build.export import export_onnx, fuse
from model_build.recipe import OverBudgetError, Recipe

log = logging.getLogger(__name__)


def tokenize(texts: Sequence[str], *, max_tokens: int) -> list[list[int]]:
    """The same tokenizer and normalisation as the serving engine."""
    tokenizer = load_tokenizer(base_encoder_dir() / "tokenizer.json", max_tokens=max_tokens)
    return [enc.ids for enc in tokenizer.encode_batch([normalize_text(t) for t in texts])]


def embed(encoder: nn.Module, texts: Sequence[str], *, workdir: Path, max_tokens: int, threads: int,
          progress: bool = True) -> np.ndarray:
    """Sentence embeddings through a fused fp32 ONNX export of the encoder (several times faster than eager)."""
    onnx_path = workdir / "encoder.fused.onnx"
    if not onnx_path.exists():
        raw = export_onnx(SentenceEncoder(encoder), workdir / "encoder.fp32.onnx", output_name="embedding")
        fuse(raw, onnx_path, num_heads=encoder.config.num_attention_heads, hidden_size=encoder.config.hidden_size)
    session = create_session(onnx_path, threads=threads)
    ids = tokenize(texts, max_tokens=max_tokens)
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for position, row in tqdm(run_length_sorted(session, ids, 32), total=len(ids), desc="embed",
                              disable=not progress, unit="text", miniters=256):
        out[position] = row
    return out


def train_head(features: np.ndarray, targets: np.ndarray, weights: np.ndarray, *, num_labels: int,
               recipe: Recipe) -> nn.Linear:
    """Multinomial logistic regression, full batch L-BFGS (deterministic, seconds on 10k x 384)."""
    torch.manual_seed(recipe.seed)
    x = torch.from_numpy(features)
    y = torch.from_numpy(targets).long()
    w = torch.from_numpy(weights).float()
    w = w / w.mean()
    head = nn.Linear(features.shape[1], num_labels)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=recipe.head_max_iter,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        losses = nn.functional.cross_entropy(head(x), y, reduction="none")
        loss = (losses * w).mean() + recipe.head_l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head


def fine_tune(model: SentenceClassifier, texts: Sequence[str], targets: np.ndarray, weights: np.ndarray, *,
              recipe: Recipe, progress: bool = True, deadline: float | None = None) -> SentenceClassifier:
    """Fine-tune encoder and head together: AdamW, linear warm-up then linear decay, length-bucketed batches.

    `deadline` (time.monotonic()): raise OverBudgetError at the first step after it. A time estimate taken on
    an idle machine can be several times too short on a busy one; the budget holds either way."""
    rng = random.Random(recipe.seed)
    torch.manual_seed(recipe.seed)
    ids = tokenize(texts, max_tokens=recipe.train_max_tokens)
    n = len(ids)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.fine_tune_epochs
    warmup = max(1, int(total_steps * recipe.warmup_fraction))
    optimizer = torch.optim.AdamW([
        {"params": model.sentence_encoder.parameters(), "lr": recipe.encoder_lr},
        {"params": model.head.parameters(), "lr": recipe.head_lr},
    ], weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        # max(1, ...): a run of one step (tiny data) has no decay phase to divide by.
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    )
    loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=recipe.label_smoothing)
    weight_tensor = torch.from_numpy(weights).float()
    weight_tensor = weight_tensor / weight_tensor.mean()
    model.train()
    model.probabilities = False
    bar = tqdm(total=total_steps, desc="fine-tune", disable=not progress, unit="step")
    for epoch in range(recipe.fine_tune_epochs):
        # Batches of similar length (shuffled within and across buckets) waste little on padding.
        order = list(range(n))
        rng.shuffle(order)
        buckets = [sorted(order[i : i + recipe.batch_size * 50], key=lambda j: len(ids[j]))
                   for i in range(0, n, recipe.batch_size * 50)]
        batches = [b[i : i + recipe.batch_size] for b in buckets for i in range(0, len(b), recipe.batch_size)]
        rng.shuffle(batches)
        running = 0.0
        for step, batch in enumerate(batches, start=1):
            if deadline is not None and time.monotonic() > deadline:
                bar.close()
                raise OverBudgetError(f"stopped in epoch {epoch + 1} at step {step} of {steps_per_epoch}")
            width = max(len(ids[j]) for j in batch)
            input_ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, j in enumerate(batch):
                input_ids[row, : len(ids[j])] = torch.tensor(ids[j])
                mask[row, : len(ids[j])] = 1
            logits = model(input_ids, mask)
            loss = (loss_fn(logits, torch.from_numpy(targets[batch]).long()) * weight_tensor[batch]).mean()
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item()
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(epoch=epoch + 1, loss=f"{running / 50:.3f}")
                running = 0.0
    bar.close()
    model.eval()
    return model


def build_classifier(num_labels: int) -> SentenceClassifier:
    return SentenceClassifier(load_encoder(), num_labels)
