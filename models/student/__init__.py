"""The student: a small distilled detector trained on the teacher's outputs over real footage."""
