set terminal svg size 900,520 dynamic enhanced font 'DejaVu Sans,12' background rgb 'white'
set grid ytics lc rgb '#dddddd'
set key outside right top
set output 'latency_spectrum.svg'
set title "Latency percentiles, closed loop, 17 B, 50 connections\n{/*0.8 AMD EPYC, 2 CPUs, 2026-11-30, median of 3 runs, per-percentile median}"
set xlabel 'percentile'
set ylabel 'latency (µs)'
set logscale y
set xtics ("p50" 0.301, "p90" 1, "p99" 2, "p99.9" 3, "p99.99" 4)
set xrange [0.2:4.2]
plot 'latency-reverbd-w1-io_uring.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#66a61e' title 'reverbd-w1-io_uring', 'latency-reverbd-w2-io_uring.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#e6ab02' title 'reverbd-w2-io_uring', 'latency-reverbd-w1.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#1b9e77' title 'reverbd-w1', 'latency-reverbd-w2.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#d95f02' title 'reverbd-w2', 'latency-reverbd-w2-io_uring-prelimits.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#7570b3' title 'reverbd-w2-io_uring-prelimits', 'latency-reverbd-w2-io_uring-metrics.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#e7298a' title 'reverbd-w2-io_uring-metrics', 'latency-threaded.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#7570b3' title 'threaded', 'latency-minimal.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#e7298a' title 'minimal', 'latency-minimal_uring.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#a6761d' title 'minimal_uring'
