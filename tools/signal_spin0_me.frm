* Spin-summed tree-level |M|^2 of e-(p1) e+(p2) -> gamma* -> mu-(k1) mu+(k2) X(q) for a
* spin-0 X radiated off the muon line, scalar (TS) and pseudoscalar (TP), for zprime
* (src/zprime/generators/_signal_spin0_me_generated.py is generated from this file by
* tools/generate_signal_spin0_me.py; run that script, not this one, to regenerate).
*
* Lagrangians: L = -y S mubar mu (vertex -i y) and L = -i y a mubar gamma5 mu (vertex y gamma5);
* photon vertices -i e gamma^mu. The vertex factor is common to both diagrams, so it drops out
* of |M|^2 up to y^2 (the couplings, 1/s^2 and the spin average are applied in
* zprime.generators.signal). Amplitude (Gamma = 1 or gamma5):
*   M ~ [vbar(p2) gamma_al u(p1)] (1/s)
*       ubar(k1) [ Gamma (k1sl+qsl+m) gamma^al / D1 + gamma^al (-k2sl-qsl+m) Gamma / D2 ] v(k2),
*   D1 = (k1+q)^2 - m^2 = 2 k1.q + M2,  D2 = (k2+q)^2 - m^2 = 2 k2.q + M2.
* The conjugate chain is gamma0 O^dagger gamma0 read backwards: gamma0 gamma5^dagger gamma0 =
* -gamma5, so for the pseudoscalar each (conjugate) vertex gets a factor -1 (one per chain:
* an overall -1 on the conjugate chain).
* Spin sums: massless electrons, muon mass m kept. WAS, WAP: the muon tensor contracted with
* Q = k1 + k2 + q on both photon indices (current conservation on the photon side), must vanish.
*
* Invariants left in the result: s = 2 p1.p2, p1k1 = p1.k1, p1k2, p2k1, p2k2, D1, D2,
* m2 = m^2, M2 = q^2 (as in signal_me.frm).
#-
Off Statistics;
Symbols m, m2, M2, s, D1, D2, p1k1, p1k2, p2k1, p2k2;
Vectors p1, p2, k1, k2, q;
Indices al, be;

#ifndef `OUTFILE'
  #define OUTFILE "signal_spin0_me.out"
#endif

* muon-line tensor H^{al be} for the vertex matrix `G' (gi_(2) or g5_(2)) and the sign `SG' of
* its Dirac conjugate (+1 scalar, -1 pseudoscalar)
#define HS "(g_(2,k1) + m*gi_(2))
  * ( gi_(2)*(g_(2,k1)+g_(2,q)+m*gi_(2))*g_(2,al)*D1^-1
    + g_(2,al)*(-g_(2,k2)-g_(2,q)+m*gi_(2))*gi_(2)*D2^-1 )
  * (g_(2,k2) - m*gi_(2))
  * ( g_(2,be)*(g_(2,k1)+g_(2,q)+m*gi_(2))*gi_(2)*D1^-1
    + gi_(2)*(-g_(2,k2)-g_(2,q)+m*gi_(2))*g_(2,be)*D2^-1 )"
#define HP "(-1)*(g_(2,k1) + m*gi_(2))
  * ( g5_(2)*(g_(2,k1)+g_(2,q)+m*gi_(2))*g_(2,al)*D1^-1
    + g_(2,al)*(-g_(2,k2)-g_(2,q)+m*gi_(2))*g5_(2)*D2^-1 )
  * (g_(2,k2) - m*gi_(2))
  * ( g_(2,be)*(g_(2,k1)+g_(2,q)+m*gi_(2))*g5_(2)*D1^-1
    + g5_(2)*(-g_(2,k2)-g_(2,q)+m*gi_(2))*g_(2,be)*D2^-1 )"

* electron tensor Tr[p2sl gamma^al p1sl gamma^be] (massless electrons)
Local TS = g_(1,p2,al,p1,be) * `HS';
Local TP = g_(1,p2,al,p1,be) * `HP';
Local WAS = (k1(al)+k2(al)+q(al))*(k1(be)+k2(be)+q(be)) * `HS';
Local WAP = (k1(al)+k2(al)+q(al))*(k1(be)+k2(be)+q(be)) * `HP';

trace4,1;
trace4,2;
contract;
id p1.p1 = 0;
id p2.p2 = 0;
id k1.k1 = m^2;
id k2.k2 = m^2;
id q.q = M2;
id k1.q = (D1 - M2)/2;
id k2.q = (D2 - M2)/2;
id p1.q = s/2 - p1.k1 - p1.k2;
id p2.q = s/2 - p2.k1 - p2.k2;
id p1.p2 = s/2;
id k1.k2 = (s - D1 - D2 + M2 - 2*m^2)/2;
id p1.k1 = p1k1;
id p1.k2 = p1k2;
id p2.k1 = p2k1;
id p2.k2 = p2k2;
repeat id m^2 = m2;
.sort

#write <`OUTFILE'> "* Ward identities (must be 0)"
#write <`OUTFILE'> "WAS = %e", WAS
#write <`OUTFILE'> "WAP = %e", WAP
Drop WAS, WAP;
.sort

Format O3;
Format C;
#optimize TS
#write <`OUTFILE'> "* optimized TS"
#write <`OUTFILE'> "%O"
#write <`OUTFILE'> "TS = %e", TS
#clearoptimize
.sort
#optimize TP
#write <`OUTFILE'> "* optimized TP"
#write <`OUTFILE'> "%O"
#write <`OUTFILE'> "TP = %e", TP
.end
