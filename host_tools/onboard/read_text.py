# The text of one small record in a board's flash, such as a virtual board's radio record
# (data/radio): what `dbch flash` reads before it builds the image for the board.
#
# Started through mpremote's raw REPL: the host sends this file's text followed by the lines
# "read_text(PATH)" and "del read_text", the path as a literal. It prints the text's repr on one
# line, or nothing if there is no such file.


def read_text(path):
    try:
        with open(path) as f:
            print(repr(f.read()))
    except OSError:
        pass
