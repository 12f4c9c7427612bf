// Hardhat's node (`npx hardhat node`) is the real Ethereum JSON-RPC node of the integration tests;
// the contracts themselves are compiled by scripts/compile.js with the pinned solc-js, not by Hardhat.
// Its dev accounts are the same mnemonic's as the embedded chain's, with the same chain id.
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: 'cancun',
      mining: { auto: true },
    },
  },
};
