"""eSpeak NG engines: (voice, speed, pitch, text) -> 16-bit samples at 22,050 Hz.

Two engines with one interface (identity, voices, synthesize): ProgramEngine runs the
`espeak-ng` program (Debian's package, needs root to install), LibraryEngine the shared
library and voice data that the pip package `espeakng-loader` ships (no root: what a
fresh `./launch.sh` environment always has).

Why a helper process that forks once per utterance: the library keeps state from one
utterance to the next, which calling espeak_Initialize again does not reset, so the same
word synthesized twice in one process comes out a few samples longer or shorter. The `espeak-ng`
program is a pure function of its arguments only because every run starts a fresh
process. The helper (`python -I -S espeak.py LIBRARY DATA`, standard library only,
single-threaded, so forking is safe) initializes the library once and forks a child per
request; each child starts from the same just-initialized state, like a fresh program,
at the cost of a fork instead of a program start. With Debian's 1.51 library this gives
samples byte-identical to `espeak-ng -v VOICE -s SPEED -p PITCH --stdout TEXT` (checked
over 64 utterances of the default voices); calls are in the order the program makes them.

This file imports only the standard library: it is also the helper's script.
"""
from __future__ import annotations

import ctypes
import functools
import json
import os
import re
import struct
import subprocess
import sys
import threading

# speak_lib.h
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000      # without it a failed initialization calls exit(1)
RATE, PITCH = 1, 3                 # espeak_PARAMETER
POS_CHARACTER = 1
SYNTH_FLAGS = 0x100 | 0x1000       # espeakPHONEMES | espeakENDPAUSE, as the program passes
EE_OK = 0
HEADER = struct.Struct("<I")       # byte length of the JSON that starts each reply


class SynthesisError(RuntimeError):
  pass


# ----------------------------------------------------------------------------- the helper

class _Voice(ctypes.Structure):
  # languages is a list, "[priority byte][name]\0" repeated and ended by a 0 byte, so it is
  # read as a raw address, not as one C string.
  _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p),
              ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
              ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
              ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


def _open_library(library: str, data: str):
  lib = ctypes.CDLL(library)
  lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
  lib.espeak_Info.restype = ctypes.c_char_p
  lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
  lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
  lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
  lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
  lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
  lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
  lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                               ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
  rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), INITIALIZE_DONT_EXIT)
  if rate <= 0:
    raise SynthesisError(f"espeak_Initialize failed ({rate}) with data at {data}")
  return lib, rate


def _list_voices(lib, languages: str):
  """[(languages, identifier)] of espeak_ListVoices for a language ("en") or "variant";
  languages are the voice's language names, most specific first, as `--voices` shows."""
  text = ctypes.create_string_buffer(languages.encode())
  spec = _Voice(languages=ctypes.addressof(text))
  found, array, i = [], lib.espeak_ListVoices(ctypes.byref(spec)), 0
  while array[i]:  # a NULL-terminated array
    voice, names = array[i].contents, []
    address = voice.languages
    while ctypes.string_at(address, 1) != b"\0":  # the priority byte; 0 ends the list
      name = ctypes.string_at(address + 1)
      names.append(name.decode())
      address += len(name) + 2
    found.append((names, voice.identifier.decode()))
    i += 1
  return found


def _info(lib, rate):
  path = ctypes.c_char_p()
  version = lib.espeak_Info(ctypes.byref(path)).decode()
  return {"version": version, "data": path.value.decode(), "sample_rate": rate,
          "english": _list_voices(lib, "en"), "variants": _list_voices(lib, "variant")}


def _synthesize(lib, rate, voice: str, speed: int, pitch: int, text: str):
  """What the program does for `-v voice -s speed -p pitch --stdout text`."""
  chunks = []

  @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
  def collect(wav, count, events):
    del events
    if wav and count > 0:
      chunks.append(ctypes.string_at(wav, 2 * count))
    return 0

  lib.espeak_SetSynthCallback(collect)
  if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
    name = ctypes.create_string_buffer(voice.encode())
    spec = _Voice(languages=ctypes.addressof(name))
    if lib.espeak_SetVoiceByProperties(ctypes.byref(spec)) != EE_OK:
      raise SynthesisError(f"eSpeak NG has no voice {voice!r}")
  lib.espeak_SetParameter(RATE, speed, 0)
  lib.espeak_SetParameter(PITCH, pitch, 0)
  data = text.encode()
  status = lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, SYNTH_FLAGS, None, None)
  if status != EE_OK or lib.espeak_Synchronize() != EE_OK:
    raise SynthesisError(f"espeak_Synth failed ({status}) for {voice} {speed} {pitch} {text!r}")
  return {"sample_rate": rate}, b"".join(chunks)


def _reply(out, meta: dict, payload: bytes = b""):
  blob = json.dumps(dict(meta, payload=len(payload))).encode()
  out.write(HEADER.pack(len(blob)) + blob + payload)
  out.flush()


def _in_child(work):
  """work() -> (meta, payload) run in a forked child: its state dies with it. Returns
  what the child sent, or an error if it crashed."""
  read_fd, write_fd = os.pipe()
  pid = os.fork()
  if pid == 0:  # the child: answer through the pipe, then leave without cleanup
    os.close(read_fd)
    try:
      meta, payload = work()
    except Exception as e:  # noqa: BLE001 - everything goes back to the caller
      meta, payload = {"error": f"{type(e).__name__}: {e}"}, b""
    with os.fdopen(write_fd, "wb") as pipe:
      _reply(pipe, meta, payload)
    os._exit(0)
  os.close(write_fd)
  with os.fdopen(read_fd, "rb") as pipe:
    answer = pipe.read()
  _, status = os.waitpid(pid, 0)
  if status != 0 or len(answer) < HEADER.size:
    return {"error": f"the synthesis process died (wait status {status})"}, b""
  (size,) = HEADER.unpack(answer[:HEADER.size])
  meta = json.loads(answer[HEADER.size:HEADER.size + size])
  meta.pop("payload", None)
  return meta, answer[HEADER.size + size:]


def serve(library: str, data: str):
  """The helper's loop: one JSON request per line on stdin, one reply each on stdout."""
  out = sys.stdout.buffer
  try:
    lib, rate = _open_library(library, data)
  except Exception as e:  # noqa: BLE001
    _reply(out, {"error": f"{type(e).__name__}: {e}"})
    return
  _reply(out, {"ready": True})
  for line in sys.stdin.buffer:
    request = json.loads(line)
    # The lambdas run at once, inside this iteration (B023 cannot see that).
    if request["op"] == "info":
      meta, payload = _in_child(lambda: (_info(lib, rate), b""))
    else:
      meta, payload = _in_child(lambda: _synthesize(lib, rate, request["voice"],  # noqa: B023
                                                    request["speed"], request["pitch"],  # noqa: B023
                                                    request["text"]))  # noqa: B023
    _reply(out, meta, payload)


# ----------------------------------------------------------------------------- the engines

def _voice_sets(english, variants):
  """(accents, variant names) from voice listings [(languages, file)]: an accent is the
  first language of an English voice of eSpeak NG's own (files gmw/...; mbrola voices
  need the separate mbrola program), a variant the name of a file !v/NAME."""
  accents = {names[0] for names, ident in english if names and ident.startswith("gmw/")}
  return accents, {ident[3:] for _, ident in variants if ident.startswith("!v/")}


class LibraryEngine:
  """One helper process for a library and its data. synthesize() may be called from
  several threads: requests are serialized (the helper answers one at a time)."""

  def __init__(self, library: str, data: str, package: str = ""):
    self.library, self.data, self.package = library, data, package
    self._lock = threading.Lock()
    self._proc = None

  def _request(self, request: dict):
    with self._lock:
      if self._proc is None or self._proc.poll() is not None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), self.library, self.data],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._read()  # {"ready": true}, or the initialization error
      self._proc.stdin.write((json.dumps(request) + "\n").encode())
      self._proc.stdin.flush()
      return self._read()

  def _read(self):
    head = self._proc.stdout.read(HEADER.size)
    if len(head) < HEADER.size:
      raise SynthesisError(f"the eSpeak NG helper for {self.library} exited "
                           f"(code {self._proc.wait()})")
    meta = json.loads(self._proc.stdout.read(HEADER.unpack(head)[0]))
    payload = self._proc.stdout.read(meta.pop("payload"))
    if "error" in meta:
      raise SynthesisError(f"eSpeak NG ({self.library}): {meta['error']}")
    return meta, payload

  @functools.cached_property
  def info(self) -> dict:
    return self._request({"op": "info"})[0]

  @property
  def identity(self) -> str:
    """'libespeak-ng 1.52.0 (espeakng-loader 0.2.4)': what made the samples (a cache key)."""
    return f"libespeak-ng {self.info['version']}" + (f" ({self.package})" if self.package else "")

  @functools.cached_property
  def voices(self):
    """(English accents, variant names), as `espeak-ng --voices=en` and `--voices=variant`
    list them."""
    return _voice_sets(self.info["english"], self.info["variants"])

  def synthesize(self, voice: str, speed: int, pitch: int, text: str):
    """(sample rate, little-endian int16 samples as bytes) for text spoken by voice."""
    meta, payload = self._request({"op": "synth", "voice": voice, "speed": int(speed),
                                   "pitch": int(pitch), "text": text})
    return meta["sample_rate"], payload

  def close(self):
    with self._lock:
      if self._proc is not None:
        self._proc.stdin.close()
        self._proc.wait()
        self._proc.stdout.close()
        self._proc = None


class ProgramEngine:
  """The `espeak-ng` program, one run per utterance (`--stdout`: a WAV on stdout)."""

  def __init__(self, program: str):
    self.program = program

  def _run(self, *args) -> str:
    return subprocess.run([self.program, *args], capture_output=True, text=True,
                          check=True).stdout

  @functools.cached_property
  def identity(self) -> str:
    """'espeak-ng program 1.51': what made the samples (a cache key)."""
    version = re.search(r"text-to-speech:\s*(\S+)", self._run("--version"))
    return f"espeak-ng program {version.group(1) if version else 'unknown version'}"

  @functools.cached_property
  def voices(self):
    """(English accents, variant names) from `--voices=en` and `--voices=variant`:
    columns Pty, Language, Age/Gender, VoiceName, File (a file name may hold a space)."""
    def listing(which):
      rows = []
      for line in self._run(f"--voices={which}").splitlines()[1:]:
        columns = line.split(None, 4)  # VoiceName has no spaces (they print as _)
        if len(columns) == 5:  # the file, then padding or " (other languages)"
          rows.append(([columns[1]], re.split(r"\s{2,}|\s\(", columns[4])[0].strip()))
      return rows
    return _voice_sets(listing("en"), listing("variant"))

  def synthesize(self, voice: str, speed: int, pitch: int, text: str):
    """(sample rate, little-endian int16 samples as bytes) for text spoken by voice."""
    out = subprocess.run([self.program, "-v", voice, "-s", str(int(speed)), "-p",
                          str(int(pitch)), "--stdout", text], capture_output=True, check=False)
    if out.returncode != 0 or len(out.stdout) <= 44:
      raise SynthesisError(f"espeak-ng -v {voice} -s {speed} -p {pitch} {text!r} failed (exit "
                           f"{out.returncode}): {out.stderr.decode(errors='replace').strip()}")
    return parse_wav(out.stdout)

  def close(self):
    pass


def parse_wav(data: bytes):
  """(sample rate, int16 sample bytes) of a mono 16-bit WAV. espeak-ng --stdout writes
  placeholder chunk sizes (it streams), so the data chunk runs to the end of the bytes."""
  if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
    raise ValueError("not a WAV file")
  pos, rate = 12, None
  while pos + 8 <= len(data):
    chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
    if chunk == b"fmt ":
      fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8:pos + 24])
      if (fmt, channels, bits) != (1, 1, 16):
        raise ValueError(f"expected 16-bit mono PCM, got format {fmt}, {channels} ch, {bits} bit")
    elif chunk == b"data":
      if rate is None:
        raise ValueError("WAV data chunk before its fmt chunk")
      body = data[pos + 8:]
      return rate, body[:len(body) // 2 * 2]
    pos += 8 + size + (size & 1)
  raise ValueError("WAV file without a data chunk")


Engine = LibraryEngine | ProgramEngine


if __name__ == "__main__":
  serve(*sys.argv[1:3])
