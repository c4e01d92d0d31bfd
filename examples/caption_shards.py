"""Re-caption webdataset shards with a saved captioner, resumably and exactly once.

    accelerate launch examples/caption_shards.py MODEL 'shards/train-{000000..000099}.tar' --out captions/

Each rank takes its own shards; a restarted run skips shards whose `{shard}.json` exists.
"""

import argparse
import logging
import sys

from hf_captioners.commands.caption_shards import add_arguments, run

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
