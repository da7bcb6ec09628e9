"""Read .env cases with python-dotenv, the reference for lua/borg/dotenv.lua.

    python3 tests/dotenv_values.py < tests/fixtures/dotenv_cases.json
    python3 tests/dotenv_values.py --write tests/fixtures/dotenv_cases.json

Each case is {"name", "text"}. The output is the cases with "values" (the
pairs dotenv_values returns, in order; null for a name without "=") and
"error_line" (the line of the first statement python-dotenv cannot parse,
counted from its first non-space character; null when none). --write
stores them in the file. Run it with only DOTENV_OUTER='outer value' in
the environment, as the spec does, because ${...} expands from it.
"""
import io
import json
import re
import sys

from dotenv import dotenv_values
from dotenv.parser import parse_stream


def first_error_line(text):
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            original = binding.original
            leading = re.match(r"\s*", original.string).group(0)
            return original.line + len(re.findall(r"\r\n|\n|\r", leading))
    return None


def evaluate(case):
    values = dotenv_values(stream=io.StringIO(case["text"]))
    return {
        "name": case["name"],
        "text": case["text"],
        "values": [[name, value] for name, value in values.items()],
        "error_line": first_error_line(case["text"]),
    }


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        with open(sys.argv[2], encoding="utf-8") as stream:
            cases = json.load(stream)
        with open(sys.argv[2], "w", encoding="utf-8") as stream:
            json.dump([evaluate(case) for case in cases], stream, indent=1)
            stream.write("\n")
        return
    cases = json.load(sys.stdin)
    json.dump([evaluate(case) for case in cases], sys.stdout)


main()
