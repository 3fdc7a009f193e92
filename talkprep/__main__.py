from talkprep.cli import main

raise SystemExit(main())
