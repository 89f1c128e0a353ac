"""The README's generated aot sections match the compiler's declaration and render the
benchmark's rows."""

from __future__ import annotations

from tinymlaas.compilers.aot.docs import OPS, ops_table, replace_block, results_table
from tinymlaas.config import REPO_ROOT


def test_readme_lists_the_declared_ops() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert replace_block(readme, OPS, ops_table()) == readme, (
        "regenerate: python -m tinymlaas.compilers.aot.docs README.md")


def test_results_rows_render_the_benchmark() -> None:
    row = {"model": "digits_cnn", "cpu": "M4", "opt": "Os", "instructions": 6_130_000,
           "tflm_ref": 74_630_000, "tflm_cmsis_nn": 4_020_000, "x_cmsis_nn": 1.525,
           "target_met": False, "model_flash": 73_040, "cmsis_nn_flash": 157_599,
           "arena": 9_504, "cmsis_nn_ram": 24_664, "bit_exact": True}
    table = results_table([row]).splitlines()
    assert table[2] == ("| digits_cnn | M4 | -Os | 6.13 M | 74.63 M | 4.02 M | 1.52 | **no** "
                        "| 73,040 | 157,599 | 9,504 | 24,664 | yes |")
