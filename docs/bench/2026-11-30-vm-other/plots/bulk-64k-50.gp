set terminal svg size 900,520 dynamic enhanced font 'DejaVu Sans,12' background rgb 'white'
set grid ytics lc rgb '#dddddd'
set key outside right top
set output 'bulk_mb_per_second.svg'
set title "64 KiB length-framed messages, 50 connections (MB/s of replies received)\n{/*0.8 AMD EPYC, 2 CPUs, 2026-11-30, median of 3 runs (bars: min-max)}"
set ylabel 'MB/s of replies'
set yrange [0:*]
set xrange [-0.6:8.6]
set xtics nomirror
set style fill solid 0.7 border -1
set boxwidth 0.6
set key off
plot 'bulk-64k-50.dat' using 1:3:6:xtic(2) with boxes lc rgb variable, \
     '' using 1:3:4:5 with yerrorbars lc rgb 'black' pt -1, \
     '' using 1:5:($3 >= 1000 ? sprintf('%.0f', $3) : sprintf('%.3g', $3)) with labels offset 0,0.8 font ',10'
