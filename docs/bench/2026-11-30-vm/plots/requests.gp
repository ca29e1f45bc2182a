set terminal svg size 900,520 dynamic enhanced font 'DejaVu Sans,12' background rgb 'white'
set grid ytics lc rgb '#dddddd'
set key outside right top
set output 'requests_by_connections.svg'
set title "Closed loop, 17-byte messages: requests/s by connections\n{/*0.8 AMD EPYC, 2 CPUs, 2026-11-30, median of 3 runs (bars: min-max)}"
set logscale x
set xlabel 'connections'
set ylabel 'requests/s'
set format y '%.0s%c'
set xtics ("1" 1, "50" 50, "1000" 1000)
set xrange [0.7:1400.0]
set yrange [0:*]
plot 'requests-reverbd-w1-io_uring.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb '#66a61e' title 'reverbd-w1-io_uring', 'requests-reverbd-w2-io_uring.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb '#e6ab02' title 'reverbd-w2-io_uring', 'requests-reverbd-w1.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb '#1b9e77' title 'reverbd-w1', 'requests-reverbd-w2.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb '#d95f02' title 'reverbd-w2', 'requests-threaded.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb '#7570b3' title 'threaded', 'requests-minimal.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb '#e7298a' title 'minimal', 'requests-minimal_uring.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb '#a6761d' title 'minimal_uring'
