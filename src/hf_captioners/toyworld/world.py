"""The toy world: seeded scenes, their images, web-like alt-texts and re-aligned dense captions.

It is built so that the papers' claims can be measured on a CPU:
- every scene has a made-up proper name that is never drawn, so only the alt-text can supply it,
  and train and eval names come from disjoint pools, so only copying can produce an eval name;
- alt-texts are partial, sometimes wrong about an attribute, sometimes junk or empty, while the
  dense caption always describes every object correctly (it "re-aligns" the alt-text);
- chosen concepts (default: the colour "gray") can be held out of the captioner's training split
  while the backbone split keeps them, like a real name that CLIP and BART saw but the captioner did not.

Every example is generated from its own RNG seeded by (seed, split, index), so examples are
independent of each other, reproducible one by one, and can be made in parallel.
"""

from __future__ import annotations

import io
import random
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "SceneObject",
    "Scene",
    "ToyExample",
    "ToyWorldConfig",
    "ToyWorldStats",
    "coco_captions",
    "dense_caption",
    "describe_object",
    "generate_example",
    "is_eval_name",
    "make_name",
    "render_scene",
]

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring")
COLORS = {
    "red": (215, 40, 40),
    "orange": (245, 140, 25),
    "yellow": (240, 215, 35),
    "green": (40, 160, 60),
    "cyan": (40, 205, 215),
    "blue": (40, 70, 215),
    "purple": (135, 50, 180),
    "pink": (245, 140, 195),
    "white": (250, 250, 250),
    "black": (20, 20, 20),
    "gray": (125, 125, 125),
}
SIZES = ("small", "large")
# Reading order: captions list objects top to bottom, left to right.
POSITIONS = {
    "top": (0.5, 0.22),
    "left": (0.24, 0.5),
    "centre": (0.5, 0.5),
    "right": (0.76, 0.5),
    "bottom": (0.5, 0.78),
}
POSITION_PHRASES = {
    "top": "at the top",
    "left": "on the left",
    "centre": "in the centre",
    "right": "on the right",
    "bottom": "at the bottom",
}
BACKGROUNDS = {"striped": "stripes", "checkered": "checkerboard", "dotted": "dots", "gradient": "gradient", "noisy": "noise"}
BACKGROUND_TONES = ((222, 205, 170), (188, 208, 226), (198, 220, 188), (228, 200, 206), (214, 214, 198))

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kr", "dr", "gl", "pl", "st", "tr", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ei", "ya")
_CODAS = ("", "", "", "n", "r", "s", "l", "x")
JUNK = (
    "IMG_{n}.jpg",
    "DSC{n}.JPG",
    "click here",
    "image",
    "untitled",
    "photo {n}",
    "{y}-{m:02d}-{d:02d}",
    "download now",
    "thumbnail",
    "stock photo {n}",
)
_SOURCES = ("alt", "title", "caption")


@dataclass
class ToyWorldConfig:
    """Rates and sizes of the toy world. Rates are probabilities per alt-text."""

    seed: int = 0
    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    p_empty: float = 0.08
    p_junk: float = 0.12
    p_name: float = 0.9
    p_object: float = 0.75
    p_wrong: float = 0.3
    p_junk_suffix: float = 0.2
    max_alt_texts: int = 3
    held_out: tuple[str, ...] = ("gray",)
    held_out_splits: tuple[str, ...] = ("train",)

    def __post_init__(self):
        self.held_out = tuple(self.held_out)
        self.held_out_splits = tuple(self.held_out_splits)
        unknown = [c for c in self.held_out if c not in COLORS and c not in SHAPES]
        if unknown:
            raise ValueError(f"held_out concepts must be colours or shapes of the toy world, got {unknown}")
        if not 1 <= self.min_objects <= self.max_objects <= len(POSITIONS):
            raise ValueError(f"need 1 <= min_objects <= max_objects <= {len(POSITIONS)}")
        for name in ("p_empty", "p_junk", "p_name", "p_object", "p_wrong", "p_junk_suffix"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if self.p_empty + self.p_junk > 1.0:
            raise ValueError("p_empty + p_junk must not exceed 1")


@dataclass
class SceneObject:
    shape: str
    color: str
    size: str
    position: str


@dataclass
class Scene:
    name: str
    background: str
    background_tones: tuple[int, int]
    objects: list[SceneObject]


@dataclass
class ToyExample:
    """One image with everything every format needs. `alt_error` records a wrong attribute."""

    key: str
    split: str
    scene: Scene
    image_bytes: bytes
    alt_texts: list[tuple[str, str]]
    caption: str
    captions: list[str]
    alt_kind: str = "informative"
    alt_error: dict | None = None
    alt_has_name: bool = False

    @property
    def alt_text(self) -> str:
        return self.alt_texts[0][1]

    def scene_dict(self) -> dict:
        return asdict(self.scene)


def make_name(rng: random.Random) -> str:
    syllables = rng.choice((2, 2, 3))
    name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))
    return name.capitalize()


def is_eval_name(name: str) -> bool:
    """Names are assigned to the eval pool by a hash, so the pools are disjoint whatever the counts."""
    return zlib.crc32(name.lower().encode()) % 5 == 0


def _sample_name(rng: random.Random, eval_pool: bool) -> str:
    while True:
        name = make_name(rng)
        if len(name) >= 5 and is_eval_name(name) == eval_pool:
            return name


# Validation and test images draw their names from the pool that training never sees.
HELD_OUT_NAME_SPLITS = ("val", "eval")


def _sample_scene(rng: random.Random, cfg: ToyWorldConfig, split: str) -> Scene:
    banned = set(cfg.held_out) if split in cfg.held_out_splits else set()
    colors = [c for c in COLORS if c not in banned]
    shapes = [s for s in SHAPES if s not in banned]
    n = rng.randint(cfg.min_objects, cfg.max_objects)
    positions = rng.sample(list(POSITIONS), n)
    objects = [SceneObject(rng.choice(shapes), rng.choice(colors), rng.choice(SIZES), p) for p in positions]
    objects.sort(key=lambda o: list(POSITIONS).index(o.position))
    tones = tuple(rng.sample(range(len(BACKGROUND_TONES)), 2))
    return Scene(_sample_name(rng, eval_pool=split in HELD_OUT_NAME_SPLITS), rng.choice(list(BACKGROUNDS)), tones, objects)


def describe_object(obj: SceneObject, with_size: bool = True, with_position: bool = True) -> str:
    words = [obj.size] if with_size else []
    words += [obj.color, obj.shape]
    text = " ".join(words)
    return f"{text} {POSITION_PHRASES[obj.position]}" if with_position else text


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def dense_caption(scene: Scene, with_name: bool) -> str:
    """The re-aligned caption: every object with all its attributes, plus the name if the alt-text had it."""
    objects = _join([_article(describe_object(o)) for o in scene.objects])
    head = f"A picture of {scene.name} showing" if with_name else "A picture showing"
    return f"{head} {objects}, on a {scene.background} background."


def coco_captions(scene: Scene, rng: random.Random) -> list[str]:
    """Five short COCO-style captions in varied wording; never the name (it is not visible)."""
    objs = scene.objects
    plain = [_article(describe_object(o, with_size=False, with_position=False)) for o in objs]
    sized = [_article(describe_object(o, with_position=False)) for o in objs]
    placed = [_article(describe_object(o, with_size=False)) for o in objs]
    count = ("one shape", "two shapes", "three shapes", "four shapes", "five shapes")[len(objs) - 1]
    templates = [
        _join(plain),
        f"{_join(sized)} on a {scene.background} background",
        f"there is {_join(placed)}",
        f"{count} on a {scene.background} background: {_join(plain)}",
        f"a {scene.background} background with {_join(sized)}",
        f"a drawing of {_join(placed)}",
        f"{_join(plain)} drawn on a {scene.background} background",
    ]
    return rng.sample(templates, 5)


def _junk(rng: random.Random) -> str:
    return rng.choice(JUNK).format(
        n=rng.randint(1000, 9999), y=rng.randint(2005, 2024), m=rng.randint(1, 12), d=rng.randint(1, 28)
    )


def _alt_text(rng: random.Random, scene: Scene, cfg: ToyWorldConfig, split: str) -> tuple[str, str, dict | None, bool]:
    """One web-like alt-text: (text, kind, the wrong attribute it states or None, whether it has the name)."""
    draw = rng.random()
    if draw < cfg.p_empty:
        return "", "empty", None, False
    if draw < cfg.p_empty + cfg.p_junk:
        return _junk(rng), "junk", None, False
    has_name = rng.random() < cfg.p_name
    mention, error = None, None
    if rng.random() < cfg.p_object or not has_name:
        obj = rng.choice(scene.objects)
        color, shape = obj.color, obj.shape
        if rng.random() < cfg.p_wrong:
            banned = set(cfg.held_out) if split in cfg.held_out_splits else set()
            if rng.random() < 2 / 3:
                wrong = rng.choice([c for c in COLORS if c != color and c not in banned])
                error = {"object": scene.objects.index(obj), "field": "color", "wrong": wrong, "right": color}
                color = wrong
            else:
                wrong = rng.choice([s for s in SHAPES if s != shape and s not in banned])
                error = {"object": scene.objects.index(obj), "field": "shape", "wrong": wrong, "right": shape}
                shape = wrong
        mention = f"{color} {shape}"
    name = scene.name
    if has_name and mention:
        text = rng.choice(
            (
                f"{name} {mention}",
                f"{name} - {mention}",
                f"{mention} | {name}",
                f"Photo of {name} with {_article(mention)}",
                f"{name}, {mention} print",
                f"{mention} by {name}",
            )
        )
    elif has_name:
        text = rng.choice((name, f"{name} artwork", f"The {name} collection", f"{name} &amp; friends"))
    else:
        text = rng.choice((mention, f"{mention} clipart", f"{_article(mention)} on a background"))
    if rng.random() < cfg.p_junk_suffix:
        text = f"{text} {rng.choice(('|', '-', '::'))} {_junk(rng)}"
    return text, "informative", error, has_name


def _texture(kind: str, tones: tuple[tuple[int, int, int], tuple[int, int, int]], size: int, rng: random.Random) -> np.ndarray:
    a, b = (np.array(t, dtype=np.float32) for t in tones)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.choice((6, 8, 10))
    if kind == "stripes":
        axis = rng.choice((xx, yy, xx + yy))
        mask = (axis // (period / 2)) % 2
    elif kind == "checkerboard":
        mask = ((xx // period) + (yy // period)) % 2
    elif kind == "dots":
        mask = (((xx % period) - period / 2) ** 2 + ((yy % period) - period / 2) ** 2 < (period / 4) ** 2).astype(np.float32)
    elif kind == "gradient":
        mask = rng.choice((xx, yy)) / (size - 1)
    else:
        noise = np.random.default_rng(rng.getrandbits(32)).random((size // 4, size // 4), dtype=np.float32)
        mask = np.kron(noise, np.ones((4, 4), dtype=np.float32))
    return a * (1 - mask[..., None]) + b * mask[..., None]


def _shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        return [(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)]
    if shape == "star":
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * 0.45
            angle = np.pi / 2 + i * np.pi / 5
            points.append((cx + radius * np.cos(angle), cy - radius * np.sin(angle)))
        return points
    raise ValueError(shape)


def render_scene(scene: Scene, size: int, rng: random.Random) -> Image.Image:
    """Draw at 4x and downsample, so small shapes keep recognisable, anti-aliased outlines."""
    scale = 4
    tones = tuple(BACKGROUND_TONES[i] for i in scene.background_tones)
    background = _texture(BACKGROUNDS[scene.background], tones, size, rng)
    canvas = Image.fromarray(background.clip(0, 255).astype(np.uint8)).resize((size * scale,) * 2, Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    big = size * scale
    for obj in scene.objects:
        fx, fy = POSITIONS[obj.position]
        cx = (fx + rng.uniform(-0.03, 0.03)) * big
        cy = (fy + rng.uniform(-0.03, 0.03)) * big
        r = (0.11 if obj.size == "small" else 0.19) * big * rng.uniform(0.92, 1.08)
        fill = COLORS[obj.color]
        if obj.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif obj.shape == "ring":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=max(1, int(r * 0.38)))
        elif obj.shape == "square":
            s = r * 0.85
            draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
        elif obj.shape == "cross":
            w = r * 0.32
            draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
            draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
        else:
            draw.polygon(_shape_points(obj.shape, cx, cy, r), fill=fill)
    return canvas.resize((size, size), Image.LANCZOS)


def _example_rng(seed: int, split: str, index: int) -> random.Random:
    return random.Random(f"toyworld:{seed}:{split}:{index}")


def generate_example(cfg: ToyWorldConfig, split: str, index: int) -> ToyExample:
    rng = _example_rng(cfg.seed, split, index)
    scene = _sample_scene(rng, cfg, split)
    image = render_scene(scene, cfg.image_size, rng)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    n_alt = rng.randint(1, cfg.max_alt_texts)
    alts = [_alt_text(rng, scene, cfg, split) for _ in range(n_alt)]
    _, first_kind, first_error, first_has_name = alts[0]
    texts = [(_SOURCES[i % len(_SOURCES)], alt[0]) for i, alt in enumerate(alts)]
    return ToyExample(
        key=f"{split}{index:07d}",
        split=split,
        scene=scene,
        image_bytes=buffer.getvalue(),
        alt_texts=texts,
        caption=dense_caption(scene, with_name=first_has_name),
        captions=coco_captions(scene, rng),
        alt_kind=first_kind,
        alt_error=first_error,
        alt_has_name=first_has_name,
    )


@dataclass
class ToyWorldStats:
    """Measured rates of what the generator produced, per split."""

    examples: int = 0
    alt_empty: int = 0
    alt_junk_only: int = 0
    alt_with_name: int = 0
    alt_with_error: int = 0
    objects: int = 0
    held_out_images: int = 0
    names: set = field(default_factory=set)

    def add(self, example: ToyExample, cfg: ToyWorldConfig) -> None:
        self.examples += 1
        self.alt_empty += example.alt_kind == "empty"
        self.alt_junk_only += example.alt_kind == "junk"
        self.alt_with_name += example.alt_has_name
        self.alt_with_error += example.alt_error is not None
        self.objects += len(example.scene.objects)
        self.held_out_images += any(
            o.color in cfg.held_out or o.shape in cfg.held_out for o in example.scene.objects
        )
        self.names.add(example.scene.name)

    def summary(self) -> dict:
        n = max(self.examples, 1)
        return {
            "examples": self.examples,
            "rate_alt_empty": round(self.alt_empty / n, 4),
            "rate_alt_junk_only": round(self.alt_junk_only / n, 4),
            "rate_alt_with_name": round(self.alt_with_name / n, 4),
            "rate_alt_with_wrong_attribute": round(self.alt_with_error / n, 4),
            "objects_per_image": round(self.objects / n, 3),
            "images_with_held_out_concept": self.held_out_images,
            "distinct_names": len(self.names),
        }
