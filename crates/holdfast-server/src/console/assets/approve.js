// Approve a request with the user's own wallet (EIP-1193: window.ethereum). The wallet is
// asked to sign exactly the typed data shown on the page (#typed-data); the signature is
// posted to the API's approve route with this session's CSRF token; the service's answer
// (accepted, or refused and why) is shown in #approve-result.

const panel = document.getElementById('approve');
const button = document.getElementById('approve-button');
const result = document.getElementById('approve-result');
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

function say(text, ok) {
  result.textContent = text;
  result.className = ok ? 'accepted' : 'refused';
}

async function approve() {
  const eth = window.ethereum;
  if (!eth || typeof eth.request !== 'function') {
    say('No wallet found: install or unlock an EIP-1193 wallet (MetaMask, Rabby, Frame).', false);
    return;
  }
  const text = document.getElementById('typed-data').textContent;
  const typed = JSON.parse(text);
  button.disabled = true;
  try {
    const [account] = await eth.request({ method: 'eth_requestAccounts' });
    if (!account) throw new Error('the wallet gave no account');
    const signature = await eth.request({
      method: 'eth_signTypedData_v4',
      params: [account, JSON.stringify(typed)],
    });
    const m = typed.message;
    const id = panel.dataset.requestId;
    const resp = await fetch(`/v1/guard/requests/${encodeURIComponent(id)}/approvals`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify({
        requestId: m.requestId,
        payloadHash: m.payloadHash,
        chainId: m.chainId,
        action: m.action,
        deadline: m.deadline,
        signature,
      }),
    });
    const answer = await resp.json().catch(() => ({}));
    if (resp.ok) {
      const have = answer.approvals ? `${answer.approvals.have.length} of ${answer.approvals.need}` : '';
      say(`Accepted: the request is now ${answer.state}${have ? ` (${have} approvals)` : ''}.`, true);
    } else {
      say(`Refused: ${answer.error?.message ?? answer.message ?? resp.statusText}`, false);
    }
  } catch (e) {
    say(`Not signed: ${e?.message ?? e}`, false);
  } finally {
    button.disabled = false;
  }
}

button?.addEventListener('click', approve);
