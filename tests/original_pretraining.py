"""The original ``create_pretraining_data.py`` algorithm written out independently (a test
helper module, not a test): token *strings* and the plain ``random.Random`` calls the original
makes (google-research/bert ``create_training_instances`` / ``create_instances_from_document`` /
``create_masked_lm_predictions`` / ``truncate_seq_pair``), independently of
``bert_cli.text.pretraining``. ``tests/cli/test_user_pretrain_data_original.py`` checks it against the
golden output of the real original; the other tests compare the program with it.
"""

from __future__ import annotations

SEQ, PRED, PROB, SHORT = 128, 20, 0.15, 0.1


# -- the original's algorithm, written out -------------------------------------------------------


def original_documents(lines, tokenizer) -> list[list[list[str]]]:
    """Blank lines separate documents; each non-blank line is tokenized; empty ones dropped."""
    documents: list[list[list[str]]] = [[]]
    for line in lines:
        line = line.strip()
        if not line:
            documents.append([])
        tokens = tokenizer.tokenize(line)
        if tokens:
            documents[-1].append(tokens)
    return [d for d in documents if d]


def original_instances(documents, vocab_words, rng, *, dupe=5, wwm=False, seq=SEQ, pred=PRED, prob=PROB, short=SHORT):
    """``create_training_instances`` after reading: shuffle documents, ``dupe`` rounds, shuffle."""
    documents = list(documents)
    rng.shuffle(documents)
    instances = []
    for _ in range(dupe):
        for index in range(len(documents)):
            instances.extend(from_document(documents, index, vocab_words, rng, wwm, seq, pred, prob, short))
    rng.shuffle(instances)
    return instances


def from_document(documents, index, vocab_words, rng, wwm, seq, pred, prob, short):
    document = documents[index]
    max_tokens = seq - 3
    target = max_tokens
    if rng.random() < short:
        target = rng.randint(2, max_tokens)
    out, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for segment in chunk[:a_end] for t in segment]
            tokens_b = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random_next = True
                for _ in range(10):
                    other = rng.randint(0, len(documents) - 1)
                    if other != index:
                        break
                random_document = documents[other]
                for segment in random_document[rng.randint(0, len(random_document) - 1):]:
                    tokens_b.extend(segment)
                    if len(tokens_b) >= target - len(tokens_a):
                        break
                i -= len(chunk) - a_end
            else:
                is_random_next = False
                tokens_b = [t for segment in chunk[a_end:] for t in segment]
            while len(tokens_a) + len(tokens_b) > max_tokens:
                longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
                if rng.random() < 0.5:
                    del longer[0]
                else:
                    longer.pop()
            tokens = ["[CLS]", *tokens_a, "[SEP]", *tokens_b, "[SEP]"]
            segments = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
            masked, positions, labels = masked_lm_predictions(tokens, vocab_words, rng, wwm, pred, prob)
            out.append((masked, segments, positions, labels, is_random_next))
            chunk, length = [], 0
        i += 1
    return out


def word_groups(tokens: list[str]) -> list[list[int]]:
    """The original's candidates: every position but [CLS]/[SEP]; under whole-word masking a
    ``##`` piece joins the candidate before it (whatever lies between, even a [SEP])."""
    groups: list[list[int]] = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if groups and token.startswith("##"):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def budget(n_tokens: int, pred: int = PRED, prob: float = PROB) -> int:
    return min(pred, max(1, int(round(n_tokens * prob))))


def masked_lm_predictions(tokens, vocab_words, rng, wwm, pred, prob):
    candidates = word_groups(tokens) if wwm else [[i] for i, t in enumerate(tokens) if t not in ("[CLS]", "[SEP]")]
    rng.shuffle(candidates)
    n = budget(len(tokens), pred, prob)
    output, chosen, covered = list(tokens), [], set()
    for group in candidates:
        if len(chosen) >= n:
            break
        if len(chosen) + len(group) > n or covered & set(group):
            continue
        for i in group:
            covered.add(i)
            if rng.random() < 0.8:
                output[i] = "[MASK]"
            elif rng.random() < 0.5:
                output[i] = tokens[i]
            else:
                output[i] = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            chosen.append(i)
    chosen.sort()
    return output, chosen, [tokens[i] for i in chosen]


def as_features(instance, vocab: dict[str, int], seq: int = SEQ, pred: int = PRED) -> dict[str, list]:
    """The original's ``write_instance_to_example_files`` features of one instance."""
    tokens, segments, positions, labels, is_random_next = instance
    pad, k = seq - len(tokens), len(positions)
    return {
        "input_ids": [vocab[t] for t in tokens] + [0] * pad,
        "input_mask": [1] * len(tokens) + [0] * pad,
        "segment_ids": segments + [0] * pad,
        "masked_lm_positions": positions + [0] * (pred - k),
        "masked_lm_ids": [vocab[t] for t in labels] + [0] * (pred - k),
        "masked_lm_weights": [1.0] * k + [0.0] * (pred - k),
        "next_sentence_labels": [int(is_random_next)],
    }
