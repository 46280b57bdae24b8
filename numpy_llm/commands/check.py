"""``python cli.py check exercises/gelu.py``: grade a backward you wrote yourself.

The file is one of the stubs in exercises/ with its backward filled in; the grading (which
exercise it is, the finite-difference check, the hints) is in gradcheck/exercises.py.
Exit code 0: every gradient is right; 1: some are not; 2: the file cannot be graded.
"""
from gradcheck.exercises import format_grade, grade_file


def configure(parser):
    parser.add_argument("file", help="your exercise file, e.g. exercises/gelu.py")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")


def run(args):
    grade = grade_file(args.file, seed=args.seed)
    print(format_grade(grade))
    return 0 if grade.passed else 1
