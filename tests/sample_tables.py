"""Tables the tests write as files, shared by several test modules."""

import numpy as np


def mixed_csv(path, rows=240, seed=0):
    """Numbers with gaps, a category with gaps, a boolean with gaps, a binary target."""
    rng = np.random.default_rng(seed)
    lines = ["age,income,colour,member,label"]
    for i in range(rows):
        age = "" if i % 11 == 0 else f"{rng.normal(40, 12):.1f}"
        income = f"{rng.lognormal(10, 1):.2f}"
        colour = "" if i % 13 == 0 else ["red", "green", "blue", "grey"][i % 4]
        member = "" if i % 7 == 0 else ("true" if rng.random() < 0.5 else "false")
        signal = (colour == "red") + (member == "true") + (age != "" and float(age) > 40)
        lines.append(f"{age},{income},{colour},{member},{'yes' if signal >= 2 else 'no'}")
    path.write_text("\n".join(lines) + "\n")
    return path
