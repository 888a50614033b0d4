"""`python -m ipolyglot.kernel install ...` writes the kernelspec; anything else starts the kernel."""

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "install":
        from .kernelspec import main as install_main

        sys.exit(install_main(sys.argv[2:]))
    from .ipkernel import IPolyglotKernelApp

    IPolyglotKernelApp.launch_instance()


if __name__ == "__main__":
    main()
