//! The ABI of every call the decoder recognizes, by exact selector. Nothing else is decoded:
//! a selector not listed here is reported as unknown, never guessed from a signature
//! database.

#![allow(
    missing_docs,
    clippy::too_many_arguments,
    missing_debug_implementations
)]

/// ERC-20, with EIP-2612 `permit`. `transferFrom` and `approve` share their selectors with
/// ERC-721.
pub mod erc20 {
    alloy::sol! {
        function transfer(address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 amount) external returns (bool);
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
        function increaseAllowance(address spender, uint256 addedValue) external returns (bool);
        function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;
        event Transfer(address indexed from, address indexed to, uint256 value);
        event Approval(address indexed owner, address indexed spender, uint256 value);
    }
}

/// ERC-721 (the forms not shared with ERC-20).
pub mod erc721 {
    alloy::sol! {
        function safeTransferFrom(address from, address to, uint256 tokenId) external;
        function safeTransferFrom(address from, address to, uint256 tokenId, bytes data) external;
        function setApprovalForAll(address operator, bool approved) external;
    }
}

/// ERC-1155.
pub mod erc1155 {
    alloy::sol! {
        function safeTransferFrom(address from, address to, uint256 id, uint256 amount, bytes data) external;
        function safeBatchTransferFrom(address from, address to, uint256[] ids, uint256[] amounts, bytes data) external;
        event TransferSingle(address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value);
        event TransferBatch(address indexed operator, address indexed from, address indexed to, uint256[] ids, uint256[] values);
    }
}

/// WETH9's events (a deposit mints without a `Transfer` event).
pub mod weth {
    alloy::sol! {
        event Deposit(address indexed dst, uint256 wad);
        event Withdrawal(address indexed src, uint256 wad);
    }
}

/// Uniswap's Permit2: AllowanceTransfer and SignatureTransfer.
pub mod permit2 {
    alloy::sol! {
        struct PermitDetails { address token; uint160 amount; uint48 expiration; uint48 nonce; }
        struct PermitSingle { PermitDetails details; address spender; uint256 sigDeadline; }
        struct PermitBatch { PermitDetails[] details; address spender; uint256 sigDeadline; }
        struct AllowanceTransferDetails { address from; address to; uint160 amount; address token; }
        struct TokenPermissions { address token; uint256 amount; }
        struct PermitTransferFrom { TokenPermissions permitted; uint256 nonce; uint256 deadline; }
        struct SignatureTransferDetails { address to; uint256 requestedAmount; }
        function approve(address token, address spender, uint160 amount, uint48 expiration) external;
        function permit(address owner, PermitSingle permitSingle, bytes signature) external;
        function permit(address owner, PermitBatch permitBatch, bytes signature) external;
        function transferFrom(address from, address to, uint160 amount, address token) external;
        function transferFrom(AllowanceTransferDetails[] transferDetails) external;
        function permitTransferFrom(PermitTransferFrom permit, SignatureTransferDetails transferDetails, address owner, bytes signature) external;
    }
}

/// Safe: execution, batches, configuration (OwnerManager, ModuleManager, GuardManager,
/// FallbackManager, 1.1.1's MasterCopy) and the views the simulation reads.
pub mod safe {
    alloy::sol! {
        function execTransaction(address to, uint256 value, bytes data, uint8 operation, uint256 safeTxGas, uint256 baseGas, uint256 gasPrice, address gasToken, address refundReceiver, bytes signatures) external payable returns (bool success);
        function multiSend(bytes transactions) external payable;

        function addOwnerWithThreshold(address owner, uint256 _threshold) external;
        function removeOwner(address prevOwner, address owner, uint256 _threshold) external;
        function swapOwner(address prevOwner, address oldOwner, address newOwner) external;
        function changeThreshold(uint256 _threshold) external;
        function enableModule(address module) external;
        function disableModule(address prevModule, address module) external;
        function setGuard(address guard) external;
        function setModuleGuard(address moduleGuard) external;
        function setFallbackHandler(address handler) external;
        function changeMasterCopy(address _masterCopy) external;

        function VERSION() external view returns (string);
        function getOwners() external view returns (address[]);
        function getThreshold() external view returns (uint256);
        function nonce() external view returns (uint256);
        function getModulesPaginated(address start, uint256 pageSize) external view returns (address[] array, address next);
        function getTransactionHash(address to, uint256 value, bytes data, uint8 operation, uint256 safeTxGas, uint256 baseGas, uint256 gasPrice, address gasToken, address refundReceiver, uint256 _nonce) external view returns (bytes32);
        function approvedHashes(address owner, bytes32 hash) external view returns (uint256);
    }
}

/// Proxies: EIP-1822 / EIP-1967 (OpenZeppelin UUPS and transparent proxies), the
/// ProxyAdmin's forms, and ownership hand-overs.
pub mod proxy {
    alloy::sol! {
        function upgradeTo(address newImplementation) external;
        function upgradeToAndCall(address newImplementation, bytes data) external payable;
        function upgrade(address proxy, address implementation) external;
        function upgradeAndCall(address proxy, address implementation, bytes data) external payable;
        function changeAdmin(address newAdmin) external;
        function changeProxyAdmin(address proxy, address newAdmin) external;
        function transferOwnership(address newOwner) external;
    }
}
