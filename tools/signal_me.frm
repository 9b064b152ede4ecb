* Spin-summed tree-level |M|^2 of e-(p1) e+(p2) -> gamma* -> mu-(k1) mu+(k2) Z'(q)
* for zprime (src/zprime/_me_generated.py is generated from this file by
* tools/generate_signal_me.py; run that script, not this one, to regenerate).
*
* Amplitude (vertices -i e gamma^mu, -i g' gamma^nu; the couplings, 1/s^2 and the spin
* average are applied in zprime.signal):
*   M ~ [vbar(p2) gamma_al u(p1)] (1/s)
*       ubar(k1) [ gamma^nu (k1sl+qsl+m) gamma^al / D1 + gamma^al (-k2sl-qsl+m) gamma^nu / D2 ] v(k2)
*       eps*_nu(q),
*   D1 = (k1+q)^2 - m^2 = 2 k1.q + M2,  D2 = (k2+q)^2 - m^2 = 2 k2.q + M2.
* Spin sums: massless electrons, muon mass m kept, Z' polarisation sum -g + q q / M2.
* T is L_{al be} H^{al be} with the -g part of the Z' sum; WZ is the q q part (current
* conservation on the Z' side) and WA the hadronic tensor contracted with Q = k1 + k2 + q
* (current conservation on the photon side). Both must vanish identically.
*
* Invariants left in the result: s = 2 p1.p2, p1k1 = p1.k1, p1k2, p2k1, p2k2, D1, D2,
* m2 = m^2, M2 = q^2. Momentum conservation p1 + p2 = k1 + k2 + q is used to eliminate the
* dot products with q and k1.k2.
#-
Off Statistics;
Symbols m, m2, M2, s, D1, D2, p1k1, p1k2, p2k1, p2k2;
Vectors p1, p2, k1, k2, q;
Indices al, be, nu, rho;

#ifndef `OUTFILE'
  #define OUTFILE "signal_me.out"
#endif

* muon-line tensor H^{al be; nu rho} (Z' indices nu, rho still open)
#define HMU "(g_(2,k1) + m*gi_(2))
  * ( g_(2,nu)*(g_(2,k1)+g_(2,q)+m*gi_(2))*g_(2,al)*D1^-1
    + g_(2,al)*(-g_(2,k2)-g_(2,q)+m*gi_(2))*g_(2,nu)*D2^-1 )
  * (g_(2,k2) - m*gi_(2))
  * ( g_(2,be)*(g_(2,k1)+g_(2,q)+m*gi_(2))*g_(2,rho)*D1^-1
    + g_(2,rho)*(-g_(2,k2)-g_(2,q)+m*gi_(2))*g_(2,be)*D2^-1 )"

* electron tensor Tr[p2sl gamma^al p1sl gamma^be] (massless electrons)
Local T  = g_(1,p2,al,p1,be) * `HMU' * (-d_(nu,rho));
Local WZ = g_(1,p2,al,p1,be) * `HMU' * q(nu)*q(rho);
Local WA = (k1(al)+k2(al)+q(al))*(k1(be)+k2(be)+q(be)) * `HMU' * (-d_(nu,rho));

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
#write <`OUTFILE'> "WZ = %e", WZ
#write <`OUTFILE'> "WA = %e", WA
Drop WZ, WA;
.sort

Format O3;
Format C;
#optimize T
#write <`OUTFILE'> "* optimized T"
#write <`OUTFILE'> "%O"
#write <`OUTFILE'> "T = %e", T
.end
