"""Research and development, outside the runtime import path: the shapes world and the shipped model's recipe, the benchmark, fixture and demo builders."""
