"""plots.py: each server keeps its own colour in every plot."""

import unittest

from harness.plots import COLOURS, colour_of

from .fixtures import servers


class ColourTest(unittest.TestCase):
    def test_known_servers_have_distinct_fixed_colours(self):
        srv = servers("reverbd-w1", "reverbd-w2", "reverbd-w1-io_uring", "reverbd-w2-io_uring",
                      "threaded", "minimal", "minimal_uring")
        colours = [colour_of(srv, s) for s in srv]
        self.assertEqual(len(set(colours)), len(srv))
        self.assertEqual(colour_of(srv, srv[-1]), COLOURS[6])

    def test_minimal_uring_keeps_its_colour_whatever_the_matrix(self):
        alone = servers("minimal_uring")
        self.assertEqual(colour_of(alone, alone[0]), COLOURS[6])


if __name__ == "__main__":
    unittest.main()
