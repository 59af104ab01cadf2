"""The commands whose module is only their command line: each module's `add_parser(sub)` adds its subparser and
sets `func`, which calls the library. finephrase/cli/main.py registers them, and those that live in their own
package (status, sweep, mix, ...), in the order `finephrase --help` lists them."""
