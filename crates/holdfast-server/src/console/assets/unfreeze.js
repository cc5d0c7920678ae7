// Sign an unfreeze approval with the user's own wallet (EIP-1193): exactly the typed data
// shown in #typed-data. The signed approval is shown as one line of JSON to hand to an
// admin, who lifts the freeze with the quorum. Only textContent is written.

const button = document.getElementById('unfreeze-sign-button');
const out = document.getElementById('unfreeze-signed');

async function sign() {
  const eth = window.ethereum;
  if (!eth || typeof eth.request !== 'function') {
    out.textContent = 'No wallet found: install or unlock an EIP-1193 wallet.';
    return;
  }
  const typed = JSON.parse(document.getElementById('typed-data').textContent);
  button.disabled = true;
  try {
    const [account] = await eth.request({ method: 'eth_requestAccounts' });
    const signature = await eth.request({
      method: 'eth_signTypedData_v4',
      params: [account, JSON.stringify(typed)],
    });
    const m = typed.message;
    out.textContent = JSON.stringify({
      requestId: m.requestId,
      payloadHash: m.payloadHash,
      chainId: m.chainId,
      action: m.action,
      deadline: m.deadline,
      signature,
    });
  } catch (e) {
    out.textContent = `Not signed: ${e?.message ?? e}`;
  } finally {
    button.disabled = false;
  }
}

button?.addEventListener('click', sign);
