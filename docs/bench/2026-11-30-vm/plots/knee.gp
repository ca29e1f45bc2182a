set terminal svg size 900,520 dynamic enhanced font 'DejaVu Sans,12' background rgb 'white'
set grid ytics lc rgb '#dddddd'
set key outside right top
set output 'knee.svg'
set title "Latency under rising load: open loop, 17-byte messages, 50 connections\n{/*0.8 AMD EPYC, 2 CPUs, 2026-11-30, median of 3 runs, per-step median}"
set xlabel "achieved requests/s (steps at 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 1, 1.2 of each server's closed-50 maximum)"
set ylabel 'p99 latency (µs), from the intended send time'
set logscale y
set format x '%.0s%c'
set xrange [0:*]
set arrow from graph 0, first 1000 to graph 1, first 1000 nohead dt 2 lc rgb '#888888'
set label 'p99 = 1 ms' at graph 0.01, first 1150 textcolor rgb '#888888' font ',10'
plot 'knee-reverbd-w1-io_uring.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#66a61e' title 'reverbd-w1-io_uring' noenhanced, 'knee-reverbd-w2-io_uring.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#e6ab02' title 'reverbd-w2-io_uring' noenhanced, 'knee-reverbd-w1.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#1b9e77' title 'reverbd-w1' noenhanced, 'knee-reverbd-w2.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#d95f02' title 'reverbd-w2' noenhanced, 'knee-threaded.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#7570b3' title 'threaded' noenhanced, 'knee-minimal.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#e7298a' title 'minimal' noenhanced, 'knee-minimal_uring.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '#a6761d' title 'minimal_uring' noenhanced
