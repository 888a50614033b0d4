"""`python -m ipolyglot.kernel install ...` writes the kernelspec; `... warm` warms the build caches
(kernel/warmup.py); anything else starts the kernel."""

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "install":
        from .kernelspec import main as install_main

        sys.exit(install_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "warm":
        from .warmup import main as warm_main

        sys.exit(warm_main(sys.argv[2:]))
    from .ipkernel import IPolyglotKernelApp

    IPolyglotKernelApp.launch_instance()


if __name__ == "__main__":
    main()
