import sys

from hf_captioners.commands import main

sys.exit(main())
