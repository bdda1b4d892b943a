"""Miniature copies of the real dataset layouts, written by the tests (nothing downloads).

Each ``make_*`` writes a few tiny images and the dataset's own annotation files
with the publisher's conventions (1-based ids, x/y/w/h boxes, palette PNGs,
trimaps, instance masks, odd image files) and returns what a correct converter
must produce, so the tests compare against known answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def jpeg(path: Path, width: int, height: int, seed: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format="JPEG", quality=90)
    return path


def png(path: Path, array: np.ndarray, palette: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette is not None:  # a palette ("P") image whose pixel values are the indices, as VOC ships them
        image = Image.frombytes("P", (array.shape[1], array.shape[0]), np.ascontiguousarray(array).tobytes())
        image.putpalette(palette)
    else:
        image = Image.fromarray(array)
    image.save(path, format="PNG")
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to its first ``keep`` fraction: a JPEG whose header still reads but whose data does not decode."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def write(path: Path, lines: list[str], newline_at_end: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if newline_at_end and lines else ""))
    return path


# --------------------------------------------------------------------------- CUB

CUB_CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross")


def make_cub(tmp: Path, *, per_class: int = 6, segmentations: bool = True) -> dict:
    """``CUB_200_2011/`` with 3 classes x ``per_class`` images, alternately train / test (ids 1-based)."""
    root = tmp / "CUB_200_2011"
    images, labels, split, boxes, expected = [], [], [], [], {}
    image_id = 0
    for c, cls in enumerate(CUB_CLASSES, start=1):
        for k in range(per_class):
            image_id += 1
            name = cls.split(".", 1)[1]
            rel = f"{cls}/{name}_{k:04d}_{image_id}.jpg"
            width, height = 40 + 2 * k, 30 + c
            jpeg(root / "images" / rel, width, height, seed=image_id)
            is_train = k % 2 == 0
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
            split.append(f"{image_id} {int(is_train)}")
            x, y, w, h = 2.0 + k, 3.0, 20.5, 15.0
            if image_id == 2:
                w = width - x  # x + w == width: the right edge on the border is inside (not clipped, no problem)
            boxes.append(f"{image_id} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
            expected[rel] = {"label": c - 1, "train": is_train, "size": (width, height), "id": image_id,
                             "box": (x, y, x + w, y + h)}
            if segmentations:
                mask = np.zeros((height, width), np.uint8)
                mask[5:20, 4:24] = 200  # confident foreground
                mask[20:24, 4:24] = 100  # soft edge below the 128 cut-off: background
                mask[0, 0] = 128  # exactly at the cut-off: foreground
                png(root / "segmentations" / Path(rel).with_suffix(".png"), mask)
    write(root / "images.txt", images)
    write(root / "image_class_labels.txt", labels)
    write(root / "train_test_split.txt", split)
    write(root / "bounding_boxes.txt", boxes)
    write(root / "classes.txt", [f"{c} {name}" for c, name in enumerate(CUB_CLASSES, start=1)])
    return {"root": root, "images": expected}


def make_cubv2(tmp: Path) -> tuple[Path, Path]:
    """CUBV2 images (2 per class) and their community metadata folder (no trailing newline)."""
    folder, meta = tmp / "CUBV2", tmp / "metadata" / "CUB" / "val"
    ids, labels, sizes, loc = [], [], [], []
    for c, cls in enumerate(CUB_CLASSES):
        for k in range(2):
            image_id = f"{cls}/{1000 + 10 * c + k}.jpg"
            jpeg(folder / image_id, 50, 40, seed=100 + c * 2 + k)
            ids.append(image_id)
            labels.append(f"{image_id},{c}")
            sizes.append(f"{image_id},50,40")
            loc.append(f"{image_id},5,6,30,35")
    write(meta / "image_ids.txt", ids, newline_at_end=False)
    write(meta / "class_labels.txt", labels, newline_at_end=False)
    write(meta / "image_sizes.txt", sizes, newline_at_end=False)
    write(meta / "localization.txt", loc, newline_at_end=False)
    return folder, meta


# --------------------------------------------------------------------------- ImageNet

WNIDS = ("n01440764", "n01443537", "n02102040")  # sorted


def _ilsvrc_xml(path: Path, width: int, height: int, objects: list[tuple[str, tuple[int, int, int, int]]]) -> None:
    body = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><folder>val</folder><filename>{path.stem}</filename><size><width>{width}</width>"
                    f"<height>{height}</height><depth>3</depth></size>{body}</annotation>")


def make_imagenet(tmp: Path, *, kaggle: bool = False, per_class_val: int = 3) -> dict:
    """ILSVRC: train/<wnid>/ (the WNIDs listed out of order on disk), val/*.JPEG with XML or Kaggle CSV."""
    top = tmp / "ILSVRC2012"
    root = top / "ILSVRC" / "Data" / "CLS-LOC" if kaggle else top
    for c, wnid in enumerate(reversed(WNIDS)):
        for k in range(2):
            jpeg(root / "train" / wnid / f"{wnid}_{k}.JPEG", 24, 20, seed=c * 10 + k)
    val, rows = {}, []
    n = 0
    for wnid in WNIDS:
        for k in range(per_class_val):
            n += 1
            stem = f"ILSVRC2012_val_{n:08d}"
            width, height = 32 + k, 28
            jpeg(root / "val" / f"{stem}.JPEG", width, height, seed=500 + n)
            objects = [(wnid, (1, 2, 20, 25))]
            if k == 1:
                objects.append((wnid, (10, 10, width, 27)))  # xmax on the right border: inside, kept as written
            val[f"val/{stem}.JPEG"] = {"label": WNIDS.index(wnid), "size": (width, height),
                                       "boxes": [tuple(float(v) for v in b) for _, b in objects]}
            if kaggle:
                rows.append(stem + "," + " ".join(f"{w} {b[0]} {b[1]} {b[2]} {b[3]}" for w, b in objects))
            else:
                _ilsvrc_xml(root / "val" / f"{stem}.xml", width, height, objects)
    if kaggle:
        write(top / "LOC_val_solution.csv", ["ImageId,PredictionString"] + rows)
        write(top / "LOC_synset_mapping.txt", [f"{w} some name, other name" for w in WNIDS])
    return {"root": top, "image_root": root, "val": val}


def make_imagenetv2(root: Path, tmp: Path) -> Path:
    """``val2/<class index>/<hash>.jpeg`` under the image root and wsolevaluation-style metadata."""
    meta = tmp / "metadata" / "ILSVRC" / "val"
    ids, labels, sizes, loc = [], [], [], []
    for c in range(len(WNIDS)):
        image_id = f"val2/{c}/{c:040x}.jpeg"
        jpeg(root / image_id, 30, 30, seed=900 + c)
        ids.append(image_id)
        labels.append(f"{image_id},{c}")
        sizes.append(f"{image_id},30,30")
        loc += [f"{image_id},1,1,20,20", f"{image_id},5,5,29,29"]
    write(meta / "image_ids.txt", ids)
    write(meta / "class_labels.txt", labels)
    write(meta / "image_sizes.txt", sizes)
    write(meta / "localization.txt", loc)
    return meta


# --------------------------------------------------------------------------- PASCAL VOC


def voc_palette() -> list[int]:
    """The VOC colour map (bit-interleaved), 256 RGB entries; index 255 is (224, 224, 192)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _voc_xml(path: Path, width: int, height: int, objects: list[tuple[str, tuple[int, int, int, int], int]]) -> None:
    body = "".join(
        f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, d in objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><folder>VOC2012</folder><filename>{path.stem}.jpg</filename><size><width>{width}"
                    f"</width><height>{height}</height><depth>3</depth></size><segmented>1</segmented>{body}"
                    "</annotation>")


def make_voc(tmp: Path) -> dict:
    """``VOCdevkit/VOC2012`` with 8 segmented images (6 train, 2 val) and 2 more in Main/trainval."""
    root = tmp / "VOCdevkit" / "VOC2012"
    expected = {}
    seg_train, seg_val = [], []
    for n in range(10):
        image_id = f"2007_{n:06d}"
        width, height = 40, 30
        jpeg(root / "JPEGImages" / f"{image_id}.jpg", width, height, seed=n)
        # a person (class 14) big box and a small dog (class 11), 1-based inclusive coordinates
        objects = [("dog", (3, 4, 10, 12), 0), ("person", (12, 2, 38, 29), 0)]
        if n == 3:
            objects = [("cat", (1, 1, 40, 30), 1)]  # difficult, whole image
        _voc_xml(root / "Annotations" / f"{image_id}.xml", width, height, objects)
        mask = np.zeros((height, width), np.uint8)
        if n == 3:
            mask[:, :] = 8  # cat
            mask[0, :] = 255
        else:
            mask[3:12, 2:10] = 12  # dog
            mask[1:29, 11:38] = 15  # person
            mask[1:29, 10] = 255  # void border
            mask[25:28, 1:3] = 5  # a bottle only the mask knows about
        if n < 8:
            png(root / "SegmentationClass" / f"{image_id}.png", mask, palette=voc_palette())
            (seg_train if n < 6 else seg_val).append(image_id)
        labels = [7] if n == 3 else [4, 11, 14] if n < 8 else [11, 14]
        expected[image_id] = {"label": 7 if n == 3 else 14, "labels": labels, "mask": mask}
    write(root / "ImageSets" / "Segmentation" / "train.txt", seg_train)
    write(root / "ImageSets" / "Segmentation" / "val.txt", seg_val)
    write(root / "ImageSets" / "Main" / "trainval.txt", [f"2007_{n:06d}" for n in range(10)])
    return {"root": tmp / "VOCdevkit", "images": expected, "seg_train": seg_train, "seg_val": seg_val}


# --------------------------------------------------------------------------- Oxford-IIIT Pet

PET_BREEDS = ("Abyssinian", "american_bulldog", "Bengal")  # CLASS-ID 1..3; cats capitalised


def make_pet(tmp: Path, *, per_class: int = 4) -> dict:
    """``images/`` + ``annotations/`` with trimaps; one CMYK JPEG, one PNG named .jpg, one corrupt file."""
    root = tmp / "pet"
    trainval, test, expected = [], [], {}
    for c, breed in enumerate(PET_BREEDS, start=1):
        species = 1 if breed[0].isupper() else 2
        for k in range(1, per_class + 1):
            name = f"{breed}_{k}"
            width, height = 30 + k, 24
            path = root / "images" / f"{name}.jpg"
            if (c, k) == (1, 2):
                jpeg(path, width, height, seed=k, mode="CMYK")
            elif (c, k) == (2, 3):
                png(path, np.full((height, width, 3), 90, np.uint8))  # a PNG despite .jpg
            elif (c, k) == (3, 4):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\xff\xd8\xff\xe0 truncated, not an image")
            else:
                jpeg(path, width, height, seed=c * 10 + k)
            trimap = np.full((height, width), 2, np.uint8)
            trimap[4:18, 6:20] = 3  # boundary band
            trimap[6:16, 8:18] = 1  # the pet
            png(root / "annotations" / "trimaps" / f"{name}.png", trimap)
            line = f"{name} {c} {species} {k}"
            (trainval if k <= per_class // 2 + 1 else test).append(line)
            expected[name] = {"label": c - 1, "size": (width, height), "box": (8.0, 6.0, 17.0, 15.0),
                              "trimap": trimap}
    header = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids", "#SPECIES: 1:Cat 2:Dog",
              "#BREED ID: 1-25:Cat 1:12:Dog", "#All images with 1st letter as captial are cat images",
              "#images with small first letter are dog images"]
    write(root / "annotations" / "list.txt", header + trainval + test)
    write(root / "annotations" / "trainval.txt", trainval)
    write(root / "annotations" / "test.txt", test)
    return {"root": root, "images": expected, "trainval": [line.split()[0] for line in trainval],
            "test": [line.split()[0] for line in test], "corrupt": "Bengal_4", "cmyk": "Abyssinian_2",
            "png": "american_bulldog_3"}


# --------------------------------------------------------------------------- OpenImages30k


def make_openimages(tmp: Path) -> dict:
    """``OpenImages/{train,val,test}/<mid>/`` images, instance masks (several modes) and metadata."""
    root = tmp / "OpenImages"
    meta = tmp / "metadata" / "OpenImages"
    mids = ("01226z", "0138tl")
    expected = {}
    for split in ("train", "val", "test"):
        ids, labels, loc = [], [], []
        for c, mid in enumerate(mids):
            for k in range(2):
                image_id = f"{split}/{mid}/{split[:2]}{c}{k:014x}.jpg"
                width, height = 20, 16
                jpeg(root / image_id, width, height, seed=len(split) * 10 + c * 2 + k)
                ids.append(image_id)
                labels.append(f"{image_id},{c}")
                if split == "train":
                    continue
                stem = image_id[:-4]
                first = np.zeros((height, width), np.uint8)
                first[2:6, 2:6] = 255
                second = np.zeros((height, width, 3), np.uint8)
                second[8:12, 10:15] = (0, 0, 1)  # pure blue level 1: reads 0 as greyscale (reference behaviour)
                second[9:11, 11:14] = (0, 90, 0)
                ignore = np.zeros((height, width), np.uint8)
                ignore[0:8, 0:8] = 255  # overlaps the first instance: ignore only outside it
                png(root / f"{stem}_m{mid}_aaaa0001.png", first > 0)  # a 1-bit PNG
                png(root / f"{stem}_m{mid}_aaaa0002.png", second)
                png(root / f"{stem}_ignore.png", ignore)
                loc.append(f"{image_id},{stem}_m{mid}_aaaa0001.png,{stem}_ignore.png")
                loc.append(f"{image_id},{stem}_m{mid}_aaaa0002.png,")
                fg = np.zeros((height, width), np.uint8)
                fg[2:6, 2:6] = 1
                fg[9:11, 11:14] = 1
                gt = fg.copy()
                gt[(ignore > 0) & (fg == 0)] = 255
                expected[image_id] = gt
        write(meta / split / "image_ids.txt", ids, newline_at_end=False)
        write(meta / split / "class_labels.txt", labels, newline_at_end=False)
        write(meta / split / "image_sizes.txt", [])
        if loc:
            write(meta / split / "localization.txt", loc, newline_at_end=False)
    return {"root": root, "metadata": meta, "masks": expected, "classes": mids}
